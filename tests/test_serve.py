import json

import pytest

from dmlviz.serve import dashboard_url, serve, voila_command


def test_voila_binds_loopback_and_refuses_another_port(tmp_path):
    command = voila_command(8866, runs_dir=tmp_path)
    assert "--Voila.ip=127.0.0.1" in command and "--port=8866" in command and "--Voila.port_retries=0" in command
    assert "--preheat_kernel=True" in command
    # no demo runs: the lesson would train them while preheating, so it is not preheated
    assert any("preheat_denylist" in part and "softtriple_lesson" in part for part in command)
    for name in ("softmax", "softtriple"):
        (tmp_path / f"mnist5k-pairs-{name}").mkdir()
        (tmp_path / f"mnist5k-pairs-{name}" / "run.json").write_text(json.dumps({"status": "finished"}))
    assert not any("preheat_denylist" in part for part in voila_command(8866, runs_dir=tmp_path))
    assert "--preheat_kernel=True" not in voila_command(8866, preheat=False)


def test_urls_and_missing_runs_folder(tmp_path):
    assert dashboard_url("127.0.0.1", 8866, run="a") == "http://127.0.0.1:8866/voila/render/explorer.ipynb?run=a"
    assert dashboard_url("::1", 9000).startswith("http://[::1]:9000/")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        serve(tmp_path / "missing")
