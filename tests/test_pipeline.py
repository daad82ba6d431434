"""The pipeline as a user drives it: simulate an export on its own test split, and the quick demo."""
import json

from typer.testing import CliRunner

from tgo_cli import app

runner = CliRunner()


def test_simulate_uses_the_exports_test_split_and_agrees_with_lava(exported_runs, tmp_path):
    _, export_dir = exported_runs["tgo"]
    result = runner.invoke(app, ["simulate", str(export_dir / "model.net"), "--n", "6", "--compare",
                                 "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "simulate.json").read_text())
    assert report["samples"] == 6 and report["compare"]["equal"] is True
    assert 0.5 <= report["backends"]["hwsim"]["accuracy"] <= 1.0
    assert report["backends"]["hwsim"]["accuracy"] == report["backends"]["lava"]["accuracy"]


def test_quick_demo_runs_end_to_end(tmp_path):
    result = runner.invoke(app, ["demo", "--quick", "--quiet", "-o", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert [row["model"] for row in summary["rows"]] == ["vanilla", "tgo+at"]
    for row in summary["rows"]:
        assert row["lava_agrees"] and row["verdict"] in ("pass", "unconverged", "inconsistent", "fail")  # Lava ran
        assert 0 <= row["robust_fixed"] <= row["clean_fixed"] + 1e-9
    assert (tmp_path / "demo" / "demo_potentials.png").is_file() and (tmp_path / "demo" / "demo.md").is_file()
