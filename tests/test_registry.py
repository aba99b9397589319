"""Registry: versions, manifest hashes, verify, promote, lock handling, and a publish killed mid-copy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftlang.cli import main
from ftlang.diagnostics import DiagnosticError
from ftlang.registry import LOCK, Registry, sha256_file


def _artifact(tmp_path: Path, text: str = "weights") -> Path:
    d = tmp_path / f"art-{text}"
    (d / "sub").mkdir(parents=True, exist_ok=True)
    (d / "adapter_model.safetensors").write_text(text)
    (d / "sub" / "config.json").write_text("{}")
    return d


def test_publish_versions_manifest_and_verify(tmp_path):
    reg = Registry(tmp_path / "reg")
    v1 = reg.publish("bot", {"adapter": _artifact(tmp_path, "a")}, plan_hash="h1", data_hashes={"d": "x"},
                     metrics={"perplexity": 3.0}, gates=[{"text": "perplexity < 5", "passed": True}])
    v2 = reg.publish("bot", {"adapter": _artifact(tmp_path, "b")}, plan_hash="h2")
    assert (v1, v2) == ("v1", "v2")
    m1, m2 = reg.manifest("bot", "v1"), reg.manifest("bot")
    assert m2["version"] == "v2" and m2["parent"] == "v1" and m1["parent"] is None
    assert m1["plan_hash"] == "h1" and m1["data_hashes"] == {"d": "x"} and m1["metrics"] == {"perplexity": 3.0}
    assert m1["stage"] == "staging" and m1["created_at"].endswith("Z")
    f = tmp_path / "reg" / "bot" / "v1" / "adapter" / "adapter_model.safetensors"
    assert m1["files"]["adapter/adapter_model.safetensors"] == sha256_file(f)
    assert reg.verify() == ([], [])
    f.write_text("tampered")
    problems, _ = reg.verify()
    assert problems == ["bot/v1: adapter/adapter_model.safetensors changed (sha256 mismatch)"]


def test_versions_never_overwritten(tmp_path):
    reg = Registry(tmp_path / "reg")
    reg.publish("m", {"a.txt": _artifact(tmp_path) / "adapter_model.safetensors"}, plan_hash="h")
    before = (tmp_path / "reg" / "m" / "v1" / "a.txt").read_text()
    reg.publish("m", {"a.txt": _artifact(tmp_path, "new") / "adapter_model.safetensors"}, plan_hash="h")
    assert (tmp_path / "reg" / "m" / "v1" / "a.txt").read_text() == before
    assert reg.versions("m") == ["v1", "v2"]


def test_promote_keeps_one_production(tmp_path):
    reg = Registry(tmp_path / "reg")
    for _ in range(2):
        reg.publish("m", {"adapter": _artifact(tmp_path)}, plan_hash="h")
    reg.promote("m", "v1", "production")
    reg.promote("m", "v2", "production")
    stages = {i.version: i.stage for i in reg.list()}
    assert stages == {"v1": "archived", "v2": "production"}
    assert [h["stage"] for h in reg.manifest("m", "v1")["stage_history"]] == ["staging", "production", "archived"]
    assert reg.verify()[0] == []  # stage changes do not touch hashed artifacts
    with pytest.raises(DiagnosticError) as e:
        reg.promote("m", "v9", "production")
    assert e.value.diagnostics[0].code == "FT820"


def test_stale_lock_of_dead_process_is_broken(tmp_path):
    reg = Registry(tmp_path / "reg")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "reg" / "m").mkdir(parents=True)
    import socket

    (tmp_path / "reg" / "m" / LOCK).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(),
                                                           "created": 0}))
    assert reg.publish("m", {"adapter": _artifact(tmp_path)}, plan_hash="h") == "v1"
    assert not (tmp_path / "reg" / "m" / LOCK).exists()


def test_live_lock_times_out_with_diagnostic(tmp_path):
    reg = Registry(tmp_path / "reg")
    with reg.lock("m"):
        with pytest.raises(DiagnosticError) as e:
            with reg.lock("m", timeout_s=0.2):
                pass
    assert e.value.diagnostics[0].code == "FT822"


_KILLED_PUBLISH = textwrap.dedent("""
    import sys, time
    import ftlang.registry as R
    real = R._copy_file
    count = 0
    def slow(src, dst):
        global count
        real(src, dst)
        count += 1
        if count == 2:
            print("copying", flush=True)
            time.sleep(120)
    R._copy_file = slow
    R.Registry(sys.argv[1]).publish("bot", {"adapter": sys.argv[2]}, plan_hash="h")
""")


def test_publish_killed_midway_leaves_verify_clean(tmp_path):
    reg_dir = tmp_path / "reg"
    reg = Registry(reg_dir)
    reg.publish("bot", {"adapter": _artifact(tmp_path, "first")}, plan_hash="h")
    art = _artifact(tmp_path, "second")
    for i in range(5):
        (art / f"extra{i}.bin").write_bytes(os.urandom(64))
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_PUBLISH, str(reg_dir), str(art)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "copying"
    assert any(p.name.startswith(".tmp-") for p in (reg_dir / "bot").iterdir())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert reg.versions("bot") == ["v1"]  # the half-copied version is invisible
    problems, notes = reg.verify()
    assert problems == [] and any("interrupted publish" in n for n in notes)
    assert not any(p.name.startswith(".tmp-") for p in (reg_dir / "bot").iterdir())
    assert reg.publish("bot", {"adapter": art}, plan_hash="h") == "v2"
    assert reg.verify() == ([], [])


def test_registry_cli(tmp_path, capsys):
    reg = Registry(tmp_path / "reg")
    reg.publish("bot", {"adapter": _artifact(tmp_path)}, plan_hash="abc")
    assert main(["registry", "list", "--registry", str(tmp_path / "reg")]) == 0
    assert "bot" in capsys.readouterr().out
    assert main(["registry", "show", "bot", "--registry", str(tmp_path / "reg")]) == 0
    assert json.loads(capsys.readouterr().out)["plan_hash"] == "abc"
    assert main(["registry", "promote", "bot", "v1", "--stage", "production", "--registry", str(tmp_path / "reg")]) == 0
    assert "production" in capsys.readouterr().out
    assert main(["registry", "verify", "--registry", str(tmp_path / "reg")]) == 0
    assert "1 version(s) OK" in capsys.readouterr().out
    (tmp_path / "reg" / "bot" / "v1" / "adapter" / "sub" / "config.json").unlink()
    assert main(["registry", "verify", "--registry", str(tmp_path / "reg")]) == 1
    assert "missing adapter/sub/config.json" in capsys.readouterr().out
    import importlib.util

    if importlib.util.find_spec("ftlang.render") is not None:  # the diagnostics renderer (another stage)
        assert main(["registry", "show", "nope", "--registry", str(tmp_path / "reg")]) == 1


def test_old_lock_is_stale_even_if_pid_lives(tmp_path):
    import socket
    import time

    reg = Registry(tmp_path / "reg")
    lock = tmp_path / "reg" / "m" / LOCK
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "created": 0}))
    old = time.time() - 3600
    os.utime(lock, (old, old))
    assert reg.publish("m", {"adapter": _artifact(tmp_path)}, plan_hash="h") == "v1"


_CONCURRENT = textwrap.dedent("""
    import sys
    from ftlang.registry import Registry
    print(Registry(sys.argv[1]).publish("bot", {"adapter": sys.argv[2]}, plan_hash=sys.argv[3]))
""")


def test_concurrent_publishes_get_distinct_versions(tmp_path):
    art = _artifact(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT, str(tmp_path / "reg"), str(art), f"h{i}"],
                              stdout=subprocess.PIPE, text=True) for i in range(4)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(outs) == ["v1", "v2", "v3", "v4"]
    reg = Registry(tmp_path / "reg")
    assert reg.verify() == ([], [])
    parents = {reg.manifest("bot", v)["parent"] for v in outs}
    assert parents == {None, "v1", "v2", "v3"}  # a chain: each publish saw the one before


def test_lock_is_never_empty_and_an_empty_one_is_stale(tmp_path):
    import time

    reg = Registry(tmp_path / "reg")
    with reg.lock("m"):
        info = json.loads((tmp_path / "reg" / "m" / LOCK).read_text())
        assert info["pid"] == os.getpid()
        assert [p.name for p in (tmp_path / "reg" / "m").iterdir()] == [LOCK]  # the link's source is gone
    lock = tmp_path / "reg" / "m" / LOCK
    lock.write_text("")  # left by a writer killed between open and write
    old = time.time() - 5
    os.utime(lock, (old, old))
    assert reg.publish("m", {"adapter": _artifact(tmp_path)}, plan_hash="h") == "v1"


def test_disk_full_is_a_diagnostic(tmp_path, monkeypatch):
    import errno

    import ftlang.registry as registry

    reg = Registry(tmp_path / "reg")

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(registry, "_copy_file", full)
    with pytest.raises(DiagnosticError) as e:
        reg.publish("m", {"adapter": _artifact(tmp_path)}, plan_hash="h")
    d = e.value.diagnostics[0]
    assert d.code == "FT825" and "space" in d.message
    assert reg.versions("m") == [] and not [p for p in (tmp_path / "reg" / "m").iterdir() if p.name != LOCK]
