import json

import pytest

from dmlviz.serve import SHARE, TEMPLATE, dashboard_url, is_loopback, serve, serve_env, voila_command


def test_voila_binds_loopback_and_refuses_another_port(tmp_path):
    command = voila_command(8866, runs_dir=tmp_path)
    assert "--Voila.ip=127.0.0.1" in command and "--port=8866" in command and "--Voila.port_retries=0" in command
    assert "--preheat_kernel=True" in command
    # no demo runs: the lesson would train them while preheating, so it is not preheated
    denylist = lambda cmd: json.loads(next(p for p in cmd if "preheat_denylist" in p).split("=", 1)[1])  # noqa: E731
    assert set(denylist(command)) == {"softtriple_lesson.ipynb", "bring_your_own.ipynb"}
    from dmlviz.demo import DEMO_RUNS, run_folder

    for name in DEMO_RUNS:
        run_folder(tmp_path, name).mkdir()
        (run_folder(tmp_path, name) / "run.json").write_text(json.dumps({"status": "finished"}))
    # with them the lesson is preheated; the notebook that trains and writes its own run never is
    assert denylist(voila_command(8866, runs_dir=tmp_path)) == ["bring_your_own.ipynb"]
    assert "--preheat_kernel=True" not in voila_command(8866, preheat=False)
    # plotly's JupyterLab extension (static figures, a second 4.8 MB copy of plotly.js) is kept off the pages
    assert '--VoilaConfiguration.extension_denylist=["jupyterlab-plotly"]' in command


def test_loopback_keeps_open_pages_with_tracebacks(tmp_path):
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        command = voila_command(8866, host, runs_dir=tmp_path)
        assert "--show_tracebacks=True" in command
        assert not any("token" in part for part in command)


def test_other_hosts_require_a_token_and_hide_tracebacks(tmp_path):
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.org"):
        assert not is_loopback(host)
        command = voila_command(8866, host, runs_dir=tmp_path)
        assert f"--Voila.ip={host}" in command
        assert "--show_tracebacks=False" in command and "--show_tracebacks=True" not in command
        assert "--Voila.auto_token=True" in command  # Voila's identity provider takes JUPYTER_TOKEN, else makes one
    # a token given on loopback is asked for too (tracebacks stay)
    command = voila_command(8866, "127.0.0.1", runs_dir=tmp_path, token=True)
    assert "--Voila.auto_token=True" in command and "--show_tracebacks=True" in command


def test_the_token_goes_through_the_environment_not_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_TOKEN", "from-the-shell")
    env = serve_env(tmp_path, "s3cret")
    assert env["JUPYTER_TOKEN"] == "s3cret"
    assert "JUPYTER_TOKEN" not in serve_env(tmp_path)  # loopback, no token: open pages as before
    assert env["DMLVIZ_RUNS_DIR"] == str(tmp_path.resolve())


def test_serve_generates_a_token_off_loopback_and_prints_it(tmp_path, monkeypatch, capsys):
    executed = {}
    monkeypatch.setattr("os.execve", lambda path, args, env: executed.update(args=args, env=env))
    serve(tmp_path, port=9001, host="0.0.0.0", preheat=False)
    token = executed["env"]["JUPYTER_TOKEN"]
    assert len(token) >= 24
    assert not any(token in part for part in executed["args"])
    assert "--show_tracebacks=False" in executed["args"] and "--Voila.auto_token=True" in executed["args"]
    assert f"http://0.0.0.0:9001/voila/render/explorer.ipynb?token={token}" in capsys.readouterr().out
    # the user's token instead of a generated one
    serve(tmp_path, port=9001, host="10.0.0.1", preheat=False, token="mine")
    assert executed["env"]["JUPYTER_TOKEN"] == "mine"
    assert "?token=mine" in capsys.readouterr().out
    # loopback: as before, no token, tracebacks shown
    serve(tmp_path, port=9001, preheat=False)
    assert "JUPYTER_TOKEN" not in executed["env"] and "--show_tracebacks=True" in executed["args"]
    assert "token=" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="empty"):
        serve(tmp_path, host="0.0.0.0", token=" ")


def test_dmlviz_template_fetches_nothing_from_outside(tmp_path):
    command = voila_command(8866, runs_dir=tmp_path)
    assert f"--template={TEMPLATE}" in command
    template = SHARE / "voila" / "templates" / TEMPLATE
    assert (template / "conf.json").is_file() and (template / "index.html.j2").is_file()
    assert str(SHARE) in serve_env(tmp_path)["JUPYTER_PATH"].split(":")
    page = (template / "page.html").read_text()
    assert "cdn." not in page and "https://" not in page


def test_urls_and_missing_runs_folder(tmp_path):
    assert dashboard_url("127.0.0.1", 8866, run="a") == "http://127.0.0.1:8866/voila/render/explorer.ipynb?run=a"
    assert dashboard_url("0.0.0.0", 8866, run="a", token="t/k") == "http://0.0.0.0:8866/voila/render/explorer.ipynb?run=a&token=t%2Fk"
    assert dashboard_url("::1", 9000).startswith("http://[::1]:9000/")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        serve(tmp_path / "missing")


def test_the_comparison_address_names_its_runs():
    from dmlviz.serve import dashboard_url

    assert dashboard_url("127.0.0.1", 8866, "compare.ipynb", runs=["g-softmax", "g-triplet+mdr"]) == \
        "http://127.0.0.1:8866/voila/render/compare.ipynb?runs=g-softmax,g-triplet%2Bmdr"


def test_the_servers_kernels_write_modules_where_it_serves_them(tmp_path, monkeypatch):
    from dmlviz.serve import MODULES_ENV, modules_dir

    monkeypatch.delenv(MODULES_ENV, raising=False)
    env = serve_env(tmp_path)
    assert env[MODULES_ENV] == str(modules_dir())
    assert env["JUPYTER_PATH"].split(":")[:2] == [str(SHARE), str(modules_dir())]  # Voila's template files come from both
    monkeypatch.setenv(MODULES_ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("JUPYTER_PATH", f"/elsewhere:{tmp_path / 'mine'}")
    env = serve_env(tmp_path)
    assert env[MODULES_ENV] == str(tmp_path / "mine")
    assert env["JUPYTER_PATH"].split(":") == [str(SHARE), str(tmp_path / "mine"), "/elsewhere"]
