"""Kubeflow Pipelines from the command line: compile the pipeline, then submit it, schedule it or list runs.

    python -m pipeline.kubeflow_cli compile  [--config FILE] [--set k=v]
    python -m pipeline.kubeflow_cli submit   [--run-name NAME]
    python -m pipeline.kubeflow_cli schedule [--cron "0 0 3 * * 1"]     # creates or replaces the recurring run
    python -m pipeline.kubeflow_cli list     [--limit N]

The KFP endpoint and experiment come from the `kubeflow` section of the configuration. The KFP API
token, if the endpoint needs one, is read from $KFP_TOKEN.
"""
from __future__ import annotations

import argparse
import os
import sys

from pipeline.config import Config
from pipeline.kubeflow_runner import (cluster_problem, compile_pipeline, compiled_line, curated_schema_folder,
                                      kfp_cron_problem, parse_with_config)


def make_client(config: Config):
    import kfp

    return kfp.Client(host=config.kubeflow.endpoint, existing_token=os.environ.get("KFP_TOKEN"))


def experiment_id(client, name: str) -> str:
    try:
        return client.get_experiment(experiment_name=name).experiment_id
    except Exception:  # KFP answers an unknown name with an API error
        return client.create_experiment(name=name).experiment_id


def submit(client, config: Config, package: str, run_name: str | None = None, cache: bool = True):
    """One run now. cache=False re-runs every step: TFX's ExampleGen driver on Kubeflow does not see
    a file moved between class folders (a relabel). Otherwise each task caches as the spec says (KFP's
    client would set every task's caching to a value given here, the ingest's too, which must read the
    labs on every run)."""
    return client.create_run_from_pipeline_package(
        package, arguments={}, run_name=run_name or f"{config.pipeline_name}-manual",
        experiment_name=config.kubeflow.experiment, enable_caching=None if cache else False,
        pipeline_root=config.kubeflow.pipeline_root)  # TFX's spec file does not carry it


def schedule(client, config: Config, package: str, cron: str | None = None):
    """Creates the recurring run, then deletes the older ones of the same name (KFP cannot edit one): a
    create that fails leaves the schedule in place."""
    exp = experiment_id(client, config.kubeflow.experiment)
    job_name = f"{config.pipeline_name}-scheduled"
    existing = _recurring_runs(client, exp)
    job = client.create_recurring_run(
        experiment_id=exp, job_name=job_name, cron_expression=cron or config.kubeflow.schedule_cron,
        pipeline_package_path=package, max_concurrency=1, no_catchup=True,
        pipeline_root=config.kubeflow.pipeline_root)
    for run in existing:
        if run.display_name == job_name and run.recurring_run_id != job.recurring_run_id:
            client.delete_recurring_run(run.recurring_run_id)
    return job


def _recurring_runs(client, experiment: str) -> list:
    """Every recurring run of the experiment, page by page: past the first page an old schedule would
    stay beside the new one."""
    runs, token = [], ""
    while True:
        page = client.list_recurring_runs(experiment_id=experiment, page_size=100, page_token=token)
        runs += page.recurring_runs or []
        token = page.next_page_token
        if not token:
            return runs


def list_runs(client, config: Config, limit: int) -> list[str]:
    exp = experiment_id(client, config.kubeflow.experiment)
    runs = client.list_runs(experiment_id=exp, page_size=limit, sort_by="created_at desc").runs or []
    return [f"{r.run_id}  {r.state:<10} {r.created_at}  {r.display_name}" for r in runs]


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.kubeflow_cli", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["compile", "submit", "schedule", "list"])
    parser.add_argument("--run-name", help="submit: the run's name")
    parser.add_argument("--no-cache", action="store_true", help="submit: re-run every step (after a relabel)")
    parser.add_argument("--cron", help="schedule: a six-field cron expression (overrides kubeflow.schedule_cron)")
    parser.add_argument("--limit", type=int, default=20, help="list: how many runs")
    args, config = parse_with_config(parser, argv)
    if config is None:
        return 2
    problem = kfp_cron_problem(args.cron) if args.cron else None
    if problem:
        print(f"error: --cron {problem}", file=sys.stderr)
        return 2
    problem = cluster_problem(config) if args.command in ("submit", "schedule") else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    package = compile_pipeline(config) if args.command != "list" else None
    if args.command == "compile":
        print(compiled_line(package, config))
        return 0
    if args.command in ("submit", "schedule"):
        from pipeline.pipeline import schema_copy, schema_path

        try:
            schema_copy(curated_schema_folder(config))
        except Exception as err:  # no credentials, no bucket, a file in the way: one line
            print(f"error: the curated schema could not be put at {schema_path(curated_schema_folder(config))}: "
                  f"{_first_line(err)}", file=sys.stderr)
            return 1
    try:
        client = make_client(config)
        if args.command == "submit":
            result = submit(client, config, package, args.run_name, cache=not args.no_cache)
            print(f"submitted run {result.run_id}")
        elif args.command == "schedule":
            job = schedule(client, config, package, args.cron)
            print(f"scheduled {job.display_name} ({job.recurring_run_id}): {args.cron or config.kubeflow.schedule_cron}")
        else:
            print("\n".join(list_runs(client, config, args.limit)) or "no runs")
    except Exception as err:  # connection refused, auth, API errors: one line
        print(f"error: Kubeflow Pipelines at {config.kubeflow.endpoint}: {_first_line(err)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
