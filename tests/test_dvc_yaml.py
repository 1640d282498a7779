"""dvc.yaml and params.yaml agree: cheap insurance against a pipeline that silently drifts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def stages():
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        return list(repo.index.stages)


def _has_key(params: dict, dotted: str) -> bool:
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_fan_out_covers_every_dataset_and_model(stages) -> None:
    names = {s.name for s in stages}
    for dataset in PARAMS["datasets"]:
        assert {f"prepare@{dataset}", f"track@{dataset}"} <= names
        for model in PARAMS["models"]:
            learn = ("vectorize", "train") if dataset in PARAMS["from_scratch"] else ("finetune",)
            assert {f"{kind}@{dataset}-{model}" for kind in (*learn, "evaluate", "explain")} <= names
            # one way in: a dataset is never both trained from scratch and fine-tuned
            other = ("finetune",) if dataset in PARAMS["from_scratch"] else ("vectorize", "train")
            assert not {f"{kind}@{dataset}-{model}" for kind in other} & names


def test_each_stage_runs_its_module_and_depends_on_shared_code(stages) -> None:
    for stage in stages:
        kind = stage.name.split("@")[0]
        assert stage.cmd.startswith(f"python -m stages.{kind} "), stage.name
        assert (ROOT / "stages" / f"{kind}.py").is_file()
        deps = {d.def_path for d in stage.deps}
        assert f"stages/{kind}.py" in deps, stage.name
        assert "stages/common" in deps, stage.name
        assert {d for d in deps if d.startswith("stages/")} == {f"stages/{kind}.py", "stages/common"}, stage.name


def test_no_stage_imports_another_stage_tools_or_bench() -> None:
    """Code that stages share lives in stages/common, so each stage's deps are its module and that."""
    for path in (ROOT / "stages").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in names:
                assert not name.startswith(("tools", "bench")), f"{path.name} imports {name}"
                if name.startswith("stages.") and not name.startswith("stages.common"):
                    assert False, f"{path.name} imports {name}"


def test_declared_params_exist(stages) -> None:
    for stage in stages:
        for dep in stage.deps:
            for key in getattr(dep, "params", None) or []:
                assert _has_key(PARAMS, key), f"{stage.name}: params key {key!r} not in params.yaml"


def test_every_model_has_a_featurizer_and_a_section() -> None:
    for model in PARAMS["models"]:
        assert model in PARAMS["vectorize"], model
        assert PARAMS[model]["architecture"] in ("mlp", "lstm")


def test_outputs_live_under_data_or_reports(stages) -> None:
    for stage in stages:
        for out in stage.outs:
            assert out.def_path.startswith(("data/", "reports/")), out.def_path


def test_stage_code_declares_no_paths() -> None:
    """Paths are declared once, in dvc.yaml; stage code receives them as arguments."""
    for path in (ROOT / "stages").rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert not node.value.startswith(("data/", "reports/")), f"{path}: {node.value!r}"


def test_metrics_are_json_and_plots_are_committed(stages) -> None:
    for stage in stages:
        for out in stage.outs:
            if out.metric:
                assert out.def_path.endswith(".json"), f"{stage.name}: metric {out.def_path} is not JSON"
            if out.def_path.startswith("reports/plots/"):
                assert not out.use_cache, f"{stage.name}: {out.def_path} must be committed (cache: false)"


def test_each_finetune_stage_depends_on_exactly_its_own_values(stages) -> None:
    """Every finetune value reaches the stage's params deps, the per-model block for its model, and nothing
    else of the section: changing ``finetune.per_model.lstm.soup`` re-runs the LSTM's fine-tune only."""
    import dataclasses

    from stages.common.params.schema import FinetuneConfig

    fields = {f.name for f in dataclasses.fields(FinetuneConfig)} - {"targets", "per_model"}
    finetunes = [s for s in stages if s.name.startswith("finetune@")]
    assert finetunes
    for stage in finetunes:
        model = stage.name.rsplit("-", 1)[1]
        keys = {key for dep in stage.deps for key in (getattr(dep, "params", None) or [])}
        own = {k for k in keys if k == "finetune" or k.startswith("finetune.")}
        assert own == {f"finetune.{f}" for f in fields} | {f"finetune.per_model.{model}"}, stage.name
        assert {"base.seed", model} <= keys, stage.name
