"""``python -m mtl_model``: exit codes and JSON as the Swift tool's."""
import json
import subprocess
import sys

from conftest import fixture, ROOT


def run(*arguments):
    result = subprocess.run([sys.executable, "-m", "mtl_model"] + list(arguments), capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    return result.returncode, result.stdout, result.stderr


def test_verify_exit_codes_and_json():
    status, out, _ = run("verify", fixture("v1.0", "small.mtlm"))
    assert status == 0 and "valid (format 1.0, 27 tensors" in out
    status, out, _ = run("verify", fixture("broken", "nan-in-embedding.mtlm"), "--json")
    report = json.loads(out)
    assert status == 1 and not report["valid"] and report["problems"][0]["kind"] == "values"
    status, out, err = run("verify", fixture("corrupt", "header-bitflip.mtlm"))
    assert status == 2 and "header checksum mismatch" in err and not out


def test_inspect():
    status, out, _ = run("inspect", fixture("v1.1", "small-int8.mtlm"), "--json")
    summary = json.loads(out)
    assert status == 0 and summary["formatVersion"] == "1.1" and summary["form"] == "serving"
    assert {t["dtype"] for t in summary["tensors"]} >= {"int8-rowwise", "float32"}
    status, out, _ = run("inspect", fixture("v1.0", "small-training.mtlm"))
    assert status == 0 and "optimizer.step" in out and "form      training" in out


def test_usage_errors_exit_2():
    assert run()[0] == 2
    assert run("frobnicate", "x")[0] == 2
