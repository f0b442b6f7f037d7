"""The harness's mark analysis on hand-made marks: nested (dynamic) tasks counted once, the train task's parts,
the grown data of the cost curves. Fast: no Ray, no pyflyte."""

from __future__ import annotations

import numpy as np

from bench.curves import SHIFTS, grown_digits
from bench.e2e import analyze, spans, train_parts


def span(name, start, end, pid=1, **fields):
    return [
        {"t": start, "pid": pid, "ev": f"{name}_start", **fields},
        {"t": end, "pid": pid, "ev": f"{name}_end", **fields},
    ]


def test_a_task_inside_a_dynamic_task_counts_once_in_the_phases():
    marks = [{"t": 0.5, "pid": 1, "ev": "launcher_start"}, *span("workflow", 1, 40)]
    for task, start, end in (
        ("prepare_data", 1, 3),
        ("tune_on_cluster", 3, 20),
        ("tune_hyperparameters", 3.5, 19.5),
        ("train_on_cluster", 20, 38),
        ("train_model", 20.5, 37.5),
        ("commit_experiment", 38, 40),
    ):
        marks += span("task", start, end, task=task) + span("dispatch", start, end, task=task)
        marks += span("inputs_to_python", start, start + 0.1, task=task) + span(
            "outputs_to_literals", end - 0.1, end, task=task
        )
    marks += span("ray_init", 3.6, 6.6)
    marks.sort(key=lambda m: m["t"])
    out = analyze(marks, t0=0.0, t_end=42.0)
    assert out["tasks"]["tune_hyperparameters"]["nested_in"] == "tune_on_cluster"
    assert out["tasks"]["train_on_cluster"]["nested_in"] is None
    phases = out["phases_s"]
    assert phases["tune"] == 17.0 - 3.0  # the outer task's wall less Ray's start, once
    assert phases["train"] == 18.0 and phases["ray_start"] == 3.0
    assert phases["workflow_glue"] == 0.0


def test_train_parts_from_worker_controller_and_driver_marks():
    marks = [*span("run_train", 9.0, 41.0, pid=1), *span("train_fit", 10.0, 40.0, pid=1)]
    for pid, born in ((11, 14.0), (12, 15.0)):
        marks.append({"t": born, "pid": pid, "ev": "process", "created": born})
        marks += span("import_torch", born + 0.5, born + 4.0, pid=pid)
        marks += span("init_process_group", 20.0, 20.1, pid=pid) + span("build", 20.1, 22.0, pid=pid)
        marks += span("prepare_model", 22.0, 22.2, pid=pid)
        for a, b in ((23.0, 27.0), (28.0, 32.0)):
            marks += span("train_epoch", a, b, pid=pid)
            if pid == 11:  # rank 0: a checkpoint with each report
                marks += span("report_checkpoint", b + 0.1, b + 0.6, pid=pid)
            marks += span("train_report_call", b + 0.2 if pid == 11 else b, b + 0.5, pid=pid)
    marks += [{"t": 27.8, "pid": 5, "ev": "train_report"}, {"t": 32.6, "pid": 5, "ev": "train_report"}]
    marks.sort(key=lambda m: m["t"])
    parts = train_parts(spans(marks), marks)
    assert parts["workers"] == 2
    assert parts["worker_group_start_s"] == 4.5  # fit at 10, workers born at 14 and 15
    assert parts["worker_imports_s"] == 4.0  # born -> the last import before the process group
    assert parts["wait_for_group_s"] == 1.5  # imports end at 18 / 19, the process group at 20
    assert parts["ddp_init_s"] == 2.2 and parts["of_which_first_build_s"] == 1.9
    assert parts["checkpoint_reports"] == 2 and parts["checkpoint_write_s_sum"] == 1.0
    assert parts["controller_polling_s"] == [0.3, 0.1]  # seen 27.8 / 32.6, the last rank back at 27.5 / 32.5
    assert parts["last_report_to_fit_end_s"] == 7.4
    assert parts["run_train_before_fit_s"] == 1.0 and parts["result_copy_out_s"] == 1.0


def test_grown_digits_are_shifted_copies_in_a_fixed_order():
    assert SHIFTS[0] == (0, 0) and len(set(SHIFTS)) == len(SHIFTS) == 100
    grown = grown_digits(250, base_n=100)
    assert grown["x"].shape == (250, 28, 28) and len(grown["y"]) == 250
    base = grown_digits(100, base_n=100)["x"]
    np.testing.assert_array_equal(grown["x"][:100], base)
    dy, dx = SHIFTS[1]
    np.testing.assert_array_equal(grown["x"][100:200], np.roll(base, (dy, dx), axis=(1, 2)))
    np.testing.assert_array_equal(grown["y"][200:], grown["y"][:50])
    assert not np.array_equal(grown["x"][200:], grown["x"][:50])
