"""Task files, the ``!function`` tag, the task registry, answer parsing, prompts and suites."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval.run import plan_suite
from eval.tasks import TASK_DIR, load_task, task_names
from eval.tasks.dataset import build_prompt, read_examples
from eval.tasks.hooks import user_text
from eval.tasks.parse import INVALID, match_choice, parse_answer
from eval.tasks.spec import load_task_file
from eval.tasks.suite import load_suite
from eval.tasks.yaml_loader import resolve_function
from llm.data.io import ReadStats
from llm.errors import BadInputError, RecordError

SHIPPED = {
    "diagnosis",
    "diagnosis_loglik",
    "readmission",
    "readmission_loglik",
    "summary",
    "radiology_impression",
    "ecg_rhythm",
}

# --- task files and the registry -------------------------------------------------------------


def test_every_shipped_task_loads_and_is_named_after_its_file() -> None:
    assert set(task_names()) == SHIPPED
    for name in task_names():
        spec = load_task(name)
        assert spec.task == name and spec.version >= 1
        first_line = (TASK_DIR / f"{name}.yaml").read_text().splitlines()[0]
        assert first_line.startswith("# clinical-llm eval run ")  # opens with its command


def test_shipped_classification_tasks_are_consistent() -> None:
    assert load_task("readmission").positive_label == "yes"
    assert load_task("ecg_rhythm").images == "required"
    assert load_task("radiology_impression").images == "optional"
    fallback = load_task("radiology_impression").text_fallback
    assert fallback is not None and fallback.name == "eval.tasks.hooks.without_images"
    assert load_task("readmission_loglik").mode == "loglikelihood_choice"


def test_unknown_task_name_suggests_the_closest() -> None:
    with pytest.raises(BadInputError, match=r"unknown task 'diagnosys'; did you mean 'diagnosis'"):
        load_task("diagnosys")


def _task_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(body, encoding="utf-8")
    return path


BASE = "task: t\nversion: 1\nparse: text\nmetrics: [rouge_l]\n"


def test_task_file_by_path_with_a_hook(tmp_path: Path) -> None:
    spec = load_task(_task_file(tmp_path, BASE + "doc_to_text: !function hooks.user_text\n"))
    assert spec.doc_to_text is not None and spec.doc_to_text.function is user_text


@pytest.mark.parametrize(
    "reference",
    [
        "os.system",
        "os.path.join",
        "builtins.eval",
        "subprocess.run",
        "hooks.BadInputError",  # a class imported into the hooks module
        "hooks.__builtins__",
        "yaml_loader.importlib",  # a module imported into an eval.tasks module
        "eval.tasks_evil.fn",
        "..hooks.user_text",
        "hooks",
    ],
)
def test_function_tag_refuses_anything_outside_eval_tasks(tmp_path: Path, reference: str) -> None:
    path = _task_file(tmp_path, BASE + f"doc_to_text: !function {reference}\n")
    with pytest.raises(BadInputError, match=r"task\.yaml:5: !function"):
        load_task_file(path)


def test_function_tag_resolves_qualified_and_relative_names() -> None:
    assert resolve_function("hooks.user_text").function is user_text
    assert resolve_function("eval.tasks.hooks.user_text").function is user_text
    with pytest.raises(BadInputError, match="has no function 'nope'"):
        resolve_function("hooks.nope")


def test_python_tags_are_refused(tmp_path: Path) -> None:
    path = _task_file(tmp_path, BASE + "doc_to_text: !!python/object/apply:os.system [echo]\n")
    with pytest.raises(BadInputError, match="not valid YAML"):
        load_task_file(path)


def test_plain_string_hook_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = _task_file(tmp_path, BASE + "doc_to_text: hooks.user_text\n")
    with pytest.raises(BadInputError, match=r"write `!function hooks.user_text`"):
        load_task_file(path)


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    body = "task: t\nversion: 0\nparse: text\nmetrics: [rouge_l, acuracy]\ncolour: red\n"
    with pytest.raises(BadInputError) as info:
        load_task_file(_task_file(tmp_path, body))
    message = str(info.value)
    assert "task.yaml:2: version:" in message
    assert "task.yaml:4: metrics:" in message and "did you mean 'accuracy'" in message
    assert "task.yaml:5: colour: Extra inputs are not permitted" in message


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            "metrics: [auroc]\npositive_label: 'yes'\nparse: choice\n",
            "use mode: loglikelihood_choice",
        ),
        ("metrics: [true_positive_rate]\nparse: choice\n", "need positive_label"),
        ("metrics: [accuracy]\nmode: loglikelihood_choice\n", "set parse: choice"),
        ("metrics: [accuracy]\nparse: choice\nchoices: [a, a]\n", "two distinct answers"),
    ],
)
def test_cross_field_checks(tmp_path: Path, extra: str, error: str) -> None:
    with pytest.raises(BadInputError, match=error):
        load_task_file(_task_file(tmp_path, "task: t\nversion: 1\n" + extra))


# --- answer parsing ---------------------------------------------------------------------------

CHOICES = ["heart_failure", "pneumonia", "sepsis"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pneumonia", "pneumonia"),
        ("  Pneumonia.\nbecause of the x-ray", "pneumonia"),
        ("Heart failure", "heart_failure"),
        ("heart-failure", "heart_failure"),
        ("The answer is sepsis", "sepsis"),
        ("pneumonai", "pneumonia"),
        ("\n\nsepsis", "sepsis"),
        ("pneumonia or sepsis", INVALID),
        ("", INVALID),
        ("\n\n\n", INVALID),
        ("fracture", INVALID),
    ],
)
def test_choice_maps_to_the_closest_label_or_invalid(text: str, expected: str) -> None:
    parsed = match_choice(text, CHOICES)
    assert parsed.prediction == expected
    assert parsed.invalid == (expected == INVALID)


def test_yes_no_are_whole_words() -> None:
    assert match_choice("Yes", ["no", "yes"]).prediction == "yes"
    assert match_choice("nothing", ["no", "yes"]).prediction == INVALID
    assert match_choice("no.", ["no", "yes"]).prediction == "no"


def test_text_and_first_line() -> None:
    assert parse_answer("  a b \n", "text").prediction == "a b"
    assert parse_answer("\n first \n second", "first_line").prediction == "first"
    with pytest.raises(ValueError, match="allowed answers"):
        parse_answer("x", "choice", None)


# --- prompts from dataset rows ----------------------------------------------------------------


def _row(task: str, answer: str, content: Any = "note text", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"{task}:P1:E1",
        "task": task,
        "messages": [
            {"role": "system", "content": "Answer with exactly one of: no, yes."},
            {"role": "user", "content": content},
            {"role": "assistant", "content": answer},
        ],
        "answer": answer,
        "label": answer,
        "images": [],
        "demographics": {"sex": "female", "age_band": "65-79"},
        **extra,
    }


IMAGE_CONTENT = [
    {"type": "image", "text": None, "image": "assets/images/P1/x.png"},
    {"type": "text", "text": "FINDINGS: clear lungs.", "image": None},
]


def test_prompt_is_the_conversation_without_the_answer() -> None:
    prompt = build_prompt(load_task("readmission"), _row("readmission", "yes"), images=False)
    assert [m["role"] for m in prompt] == ["system", "user"]
    assert all(m["content"] != "yes" for m in prompt)


def test_text_fallback_drops_images_and_keeps_the_findings() -> None:
    row = _row("radiology_impression", "Normal.", IMAGE_CONTENT)
    prompt = build_prompt(load_task("radiology_impression"), row, images=False)
    assert prompt[1] == {"role": "user", "content": "FINDINGS: clear lungs."}
    kept = build_prompt(load_task("radiology_impression"), row, images=True)
    assert kept[1]["content"] == IMAGE_CONTENT


def test_images_in_a_text_task_are_an_error() -> None:
    with pytest.raises(BadInputError, match="images: none"):
        build_prompt(
            load_task("readmission"), _row("readmission", "no", IMAGE_CONTENT), images=False
        )


def test_doc_to_text_string_becomes_the_user_turn(tmp_path: Path) -> None:
    body = BASE + "doc_to_text: !function hooks.user_text\nsystem: Be brief.\n"
    spec = load_task(_task_file(tmp_path, body))
    prompt = build_prompt(spec, _row("summary", "ok", "the note"), images=False)
    assert prompt == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "the note"},
    ]


# --- reading a split --------------------------------------------------------------------------


def _dataset(tmp_path: Path, rows: list[Any], task: str = "readmission") -> Path:
    folder = tmp_path / "datasets" / task
    folder.mkdir(parents=True)
    with (folder / "test.jsonl").open("w") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    manifest = {"tasks": {task: {"answers": ["no", "yes"]}}}
    (tmp_path / "datasets" / "manifest.json").write_text(json.dumps(manifest))
    return folder / "test.jsonl"


def test_read_examples_counts_and_limits(tmp_path: Path) -> None:
    rows = [dict(_row("readmission", a), id=f"r{i}") for i, a in enumerate(["yes", "no", "no"])]
    path = _dataset(tmp_path, rows)
    stats = ReadStats(str(path))
    spec = load_task("readmission")
    examples = read_examples(path, spec, images=False, choices=["no", "yes"], limit=2, stats=stats)
    assert [e.id for e in examples] == ["r0", "r1"]
    assert (stats.read, stats.used, stats.rejected) == (2, 2, 0)
    assert examples[0].reference == "yes" and examples[0].demographics["sex"] == "female"


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ("not json", ":2: <line>: not valid JSON"),
        ({"id": "x", "messages": [], "demographics": {}}, ":2: answer: expected a string, missing"),
        (
            dict(_row("readmission", "maybe"), id="x"),
            ":2: answer: 'maybe' is not an allowed answer",
        ),
        (dict(_row("readmission", "no"), id="r0"), ":2: id: repeats the id of line 1"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, bad: Any, where: str) -> None:
    path = _dataset(tmp_path, [dict(_row("readmission", "no"), id="r0"), bad])
    stats = ReadStats(str(path))
    with pytest.raises(RecordError, match=where):
        read_examples(
            path,
            load_task("readmission"),
            images=False,
            choices=["no", "yes"],
            limit=None,
            stats=stats,
        )
    assert (stats.read, stats.used, stats.rejected) == (2, 1, 1)


# --- suites and planning ----------------------------------------------------------------------


def _suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suites" / "s.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


SUITE = "suite: s\ndataset_dir: ../datasets\ntasks: [readmission]\nattributes: [sex]\n"


def test_suite_paths_are_relative_to_the_suite_file_and_set_overrides(tmp_path: Path) -> None:
    suite = load_suite(_suite(tmp_path, SUITE))
    assert suite.dataset_dir == tmp_path / "suites" / ".." / "datasets"
    overridden = load_suite(
        _suite(tmp_path, SUITE), ["dataset_dir=elsewhere", "bootstrap=0", "limit=3"]
    )
    assert overridden.dataset_dir == Path("elsewhere")  # --set paths: the working directory
    assert (overridden.bootstrap, overridden.limit) == (0, 3)


def test_suite_errors_name_the_line_or_the_override(tmp_path: Path) -> None:
    path = _suite(tmp_path, SUITE + "bootstrap: -1\ntasks_typo: 1\n")
    with pytest.raises(BadInputError) as info:
        load_suite(path, ["min_group_size=-3"])
    message = str(info.value)
    assert "s.yaml:5: bootstrap:" in message and "s.yaml:6: tasks_typo:" in message
    assert "--set min_group_size=-3: min_group_size:" in message


def test_plan_checks_everything_before_the_model(tmp_path: Path) -> None:
    _dataset(tmp_path, [_row("readmission", "no")])
    (tmp_path / "gates.yaml").write_text("- {metric: rouge_l, rule: min_value, threshold: 0.1}\n")
    suite = load_suite(_suite(tmp_path, SUITE + "gates: ../gates.yaml\n"))
    with pytest.raises(BadInputError, match="no task of the suite computes: rouge_l"):
        plan_suite(suite, runner_kind="local", images=False, loglikelihood=True)
    missing = load_suite(_suite(tmp_path, SUITE.replace("../datasets", "../none")))
    with pytest.raises(BadInputError, match=r"dataset_dir .*none: not found"):
        plan_suite(missing, runner_kind="local", images=False, loglikelihood=True)
    typo = load_suite(_suite(tmp_path, SUITE.replace("[readmission]", "[readmision]")))
    with pytest.raises(BadInputError, match="did you mean 'readmission'"):
        plan_suite(typo, runner_kind="local", images=False, loglikelihood=True)


def test_plan_skips_what_the_runner_cannot_do(tmp_path: Path) -> None:
    _dataset(tmp_path, [_row("readmission", "no")])
    body = SUITE.replace("[readmission]", "[readmission, readmission_loglik]")
    plans = plan_suite(
        load_suite(_suite(tmp_path, body)), runner_kind="openai", images=False, loglikelihood=False
    )
    assert plans[0].skip_reason is None
    assert plans[1].skip_reason is not None and "openai runner cannot score" in plans[1].skip_reason
    assert plans[0].choices == ["no", "yes"]
