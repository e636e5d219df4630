from pipeline import code_version


def test_fingerprint_follows_the_code(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(code_version, "REPO_ROOT", tmp_path)
    first = code_version.code_fingerprint("pkg")
    assert code_version.code_fingerprint("pkg") == first
    (pkg / "a.py").write_text("x = 2\n")
    assert code_version.code_fingerprint("pkg") != first
