"""Helpers shared by the test suites, the research tests and the benchmarks: sample image folders,
a fake TF Serving model server, and a headless browser with a local CDN."""
