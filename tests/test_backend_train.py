"""The Trainer mapping, metrics, atomic checkpoints, in-process resume and the fault paths."""

from __future__ import annotations

import json
import re

import pytest

torch = pytest.importorskip("torch")

from backend_helpers import chat_project, lm_data, tiny_plan  # noqa: E402

from ftlang.backend import checkpoint as ckpt  # noqa: E402
from ftlang.backend.context import RunContext  # noqa: E402
from ftlang.backend.load import load_tokenizer  # noqa: E402
from ftlang.backend.methods import load_for_training  # noqa: E402
from ftlang.backend.train import seed_everything, train, training_arguments  # noqa: E402
from ftlang.diagnostics import DiagnosticError  # noqa: E402
from ftlang.plan import AdapterMethod, EarlyStop, LoraMethod, Plan  # noqa: E402

LORA = LoraMethod(r=4, alpha=8, dropout=0.1, targets=["q_proj", "v_proj"])


def _callback(at_step: int, action):
    from transformers import TrainerCallback

    class Inject(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step == at_step:
                action(model)
            return control

    return Inject()


def _trainable(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def _fresh(plan):
    tok = load_tokenizer(plan)
    seed_everything(plan)
    return tok, load_for_training(plan)


class Crash(Exception):
    pass


def _raise(exc):
    def act(model):
        raise exc

    return act


# ---------------------------------------------------------------------------- mapping


def test_training_arguments_map_every_key(tiny_llama_dir, tmp_path):
    plan = tiny_plan(tiny_llama_dir, LORA, train={
        "lr": 3e-4, "epochs": 2.0, "max_steps": None, "batch": 3, "grad_accum": 5, "warmup_ratio": 0.03,
        "schedule": "cosine", "precision": "bf16", "weight_decay": 0.01, "max_grad_norm": 0.5, "seed": 7,
        "deterministic": True, "optimizer": "sgd", "logging_steps": 3, "save_steps": 11,
        "gradient_checkpointing": True,
    }, eval={"every": 5})
    a = training_arguments(plan, tmp_path, device="cpu", has_validation=True)
    assert (a.learning_rate, a.num_train_epochs, a.max_steps) == (3e-4, 2.0, -1)
    assert (a.per_device_train_batch_size, a.gradient_accumulation_steps) == (3, 5)
    assert a.warmup_steps == pytest.approx(0.03) and isinstance(a.warmup_steps, float)
    assert a.lr_scheduler_type.value == "cosine" and a.bf16 and not a.fp16
    assert (a.weight_decay, a.max_grad_norm, a.seed, a.full_determinism) == (0.01, 0.5, 7, True)
    assert a.optim.value == "sgd" and a.logging_steps == 3 and a.save_steps == 11
    assert a.eval_strategy.value == "steps" and a.eval_steps == 5
    assert a.activation_checkpointing and a.use_cpu
    steps = tiny_plan(tiny_llama_dir, LORA, train={"warmup_steps": 4})
    assert training_arguments(steps, tmp_path, device="cpu", has_validation=False).warmup_steps == 4


def test_fp16_on_cpu_and_early_stop_without_validation_are_diagnostics(tiny_llama_dir, tmp_path):
    fp16 = tiny_plan(tiny_llama_dir, LORA, train={"precision": "fp16"})
    with pytest.raises(DiagnosticError) as e:
        training_arguments(fp16, tmp_path, device="cpu", has_validation=True)
    assert e.value.diagnostics[0].code == "FT702" and "bf16 or fp32" in e.value.diagnostics[0].help
    es = tiny_plan(tiny_llama_dir, LORA, train={"early_stop": EarlyStop(patience=1)})
    with pytest.raises(DiagnosticError) as e:
        training_arguments(es, tmp_path, device="cpu", has_validation=False)
    assert e.value.diagnostics[0].code == "FT706"


def test_metrics_rows_and_log_lines(tiny_llama_dir, tmp_path):
    plan = tiny_plan(tiny_llama_dir, LORA, train={"max_steps": 4, "logging_steps": 2}, eval={"every": 2})
    tok, model = _fresh(plan)
    lines: list[str] = []
    result = train(RunContext(plan=plan, run_dir=tmp_path, model=model, tokenizer=tok, data=lm_data(tok), log=lines.append), tty=False)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == result.history
    losses = [r for r in rows if "loss" in r]
    vals = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in losses] == [2, 4] and [r["step"] for r in vals] == [2, 4]
    assert {"step", "epoch", "loss", "lr", "tokens_per_s"} <= losses[0].keys() and losses[0]["tokens_per_s"] > 0
    assert any(line.startswith("step 2/4") and "loss" in line and "tok/s" in line and "ETA" in line for line in lines)
    assert result.tokens > 0 and result.global_step == 4


def test_logging_default_gives_a_point_per_step_on_short_runs(tiny_llama_dir, tmp_path):
    plan = tiny_plan(tiny_llama_dir, LORA, train={"max_steps": 5, "logging_steps": None})
    assert plan.train.logging_steps is None
    tok, model = _fresh(plan)
    result = train(RunContext(plan=plan, run_dir=tmp_path, model=model, tokenizer=tok, data=lm_data(tok),
                              log=lambda s: None), tty=False)
    assert [r["step"] for r in result.history if "loss" in r] == [1, 2, 3, 4, 5]


def test_select_best_reloads_the_best_checkpoint(tiny_llama_dir, tmp_path):
    """select = best(val_loss): the model after training holds the weights of the checkpoint with the
    lowest validation loss (kept despite save_total_limit), and the report names that step."""
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from ftlang.backend.finish import selected_checkpoint

    class Spoil(TrainerCallback):
        """After step 4 the adapter gets large random weights, so later evaluations are worse."""

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 5:
                with torch.no_grad():
                    for n, p in model.named_parameters():
                        if "lora_" in n:
                            p.normal_(0, 3.0)
            return control

    plan = tiny_plan(tiny_llama_dir, LORA, train={"max_steps": 8, "save_total_limit": 1},
                     eval={"every": 2, "select": "best(val_loss)"})
    tok, model = _fresh(plan)
    result = train(RunContext(plan=plan, run_dir=tmp_path, model=model, tokenizer=tok, data=lm_data(tok),
                              log=lambda s: None), tty=False, callbacks=[Spoil()])
    vals = [(r["val_loss"], r["step"]) for r in result.history if "val_loss" in r]
    best_step = min(vals)[1]
    assert best_step in (2, 4), vals
    chosen = selected_checkpoint(RunContext(plan=plan, run_dir=tmp_path, model=model, tokenizer=tok, data=None,
                                            history=result.history))
    assert chosen["select"] == "best(val_loss)" and chosen["step"] == best_step and chosen["final_step"] == 8
    saved = load_file(str(tmp_path / "checkpoints" / f"checkpoint-{best_step}" / "adapter_model.safetensors"))
    live = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert saved and len(saved) == len(live)
    for name, tensor in saved.items():
        match = [v for k, v in live.items() if k.replace(".default", "") == name]
        assert match and torch.equal(match[0], tensor), name
    final = load_file(str(tmp_path / "checkpoints" / "checkpoint-8" / "adapter_model.safetensors"))
    assert any(not torch.equal(final[k], saved[k]) for k in saved)  # the final weights are not the ones kept


def test_select_best_needs_validation(tiny_llama_dir, tmp_path):
    plan = tiny_plan(tiny_llama_dir, LORA, eval={"select": "best(val_loss)"})
    with pytest.raises(DiagnosticError) as e:
        training_arguments(plan, tmp_path, device="cpu", has_validation=False)
    assert e.value.diagnostics[0].code == "FT706" and "select" in e.value.diagnostics[0].message


def test_early_stopping_stops_on_val_loss(tiny_llama_dir, tmp_path):
    # lr 0: the validation loss never improves, so patience 1 stops after the second evaluation
    plan = tiny_plan(tiny_llama_dir, LORA, train={"max_steps": 12, "early_stop": EarlyStop(patience=1)},
                     eval={"every": 2})
    # a recipe cannot say lr = 0 (the plan's range is lr > 0); the backend is tested with it all the same
    plan = plan.model_copy(update={"train": plan.train.model_copy(update={"lr": 0.0})})
    tok, model = _fresh(plan)
    result = train(RunContext(plan=plan, run_dir=tmp_path, model=model, tokenizer=tok, data=lm_data(tok), log=lambda s: None), tty=False)
    assert result.stopped_early and result.global_step == 4


# ---------------------------------------------------------------------------- checkpoints & resume


def test_checkpoint_completion_marker_and_rotation(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (2, 4, 6):
        d = root / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "adapter_model.safetensors").write_bytes(b"x" * step)
        ckpt.mark_complete(d, step)
    half = root / "checkpoint-8"
    half.mkdir()
    (half / "optimizer.pt").write_bytes(b"partial")
    assert ckpt.latest_complete(root).name == "checkpoint-6"
    (root / "checkpoint-6" / "adapter_model.safetensors").write_bytes(b"truncated")  # size no longer matches
    assert not ckpt.is_complete(root / "checkpoint-6")
    assert ckpt.latest_complete(root).name == "checkpoint-4"
    assert {p.name for p in ckpt.discard_incomplete(root)} == {"checkpoint-6", "checkpoint-8"}
    ckpt.rotate(root, 1)
    assert [p.name for p in ckpt.all_checkpoints(root)] == ["checkpoint-4"]


@pytest.mark.parametrize("method", [LORA, AdapterMethod(bottleneck=8, dropout=0.1)], ids=["lora", "adapter"])
def test_crash_then_resume_is_bit_exact_in_process(method, tiny_llama_dir, tmp_path):
    plan = tiny_plan(tiny_llama_dir, method, train={"max_steps": 8, "save_steps": 3, "lr": 5e-3})
    tok, model = _fresh(plan)
    data = lm_data(tok)
    train(RunContext(plan=plan, run_dir=tmp_path / "a", model=model, tokenizer=tok, data=data, log=lambda s: None))
    straight = _trainable(model)

    tok, model = _fresh(plan)
    with pytest.raises(Crash):
        train(RunContext(plan=plan, run_dir=tmp_path / "b", model=model, tokenizer=tok, data=data, log=lambda s: None),
              callbacks=[_callback(5, _raise(Crash()))])
    root = tmp_path / "b" / "checkpoints"
    assert [p.name for p in ckpt.complete_checkpoints(root)] == ["checkpoint-3"]
    half = root / "checkpoint-6"  # what a kill during the next save leaves behind
    half.mkdir()
    (half / "adapter_model.safetensors").write_bytes(b"\0" * 10)

    tok, model = _fresh(plan)
    result = train(RunContext(plan=plan, run_dir=tmp_path / "b", model=model, tokenizer=tok, data=data, log=lambda s: None), resume=True)
    assert result.resumed_from.name == "checkpoint-3" and result.global_step == 8
    assert not half.exists() or ckpt.is_complete(half)
    resumed = _trainable(model)
    assert max(torch.max(torch.abs(straight[k] - resumed[k])).item() for k in straight) <= 1e-6
    steps = [r["step"] for r in result.history if "loss" in r]
    assert steps == list(range(1, 9))


# ---------------------------------------------------------------------------- faults through execute()


def _project_plan(project, tiny_llama_dir, **train_kw) -> Plan:
    path = chat_project(project, tiny_llama_dir, LORA, train={"max_steps": 6, "save_steps": 2, **train_kw})
    return Plan.from_json(path.read_text())


def _poison(model):
    for name, p in model.named_parameters():
        if "lora_A" in name:
            with torch.no_grad():
                p.fill_(float("nan"))
            return


def test_nan_loss_stops_with_step_and_last_checkpoint(project, tiny_llama_dir):
    from ftlang.backend.run import execute

    plan = _project_plan(project, tiny_llama_dir)
    run = project / "runs" / "nan"
    with pytest.raises(DiagnosticError) as e:
        execute(plan, run_dir=run, log=lambda s: None, callbacks=(_callback(3, _poison),))
    d = e.value.diagnostics[0]
    assert d.code == "FT704" and "step 4" in d.message and "checkpoint-2" in d.message
    assert "lower lr" in d.help
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and record["last_checkpoint"].endswith("checkpoint-2")


def test_out_of_memory_reports_the_estimate(project, tiny_llama_dir):
    from ftlang.backend.run import execute

    plan = _project_plan(project, tiny_llama_dir)
    with pytest.raises(DiagnosticError) as e:
        execute(plan, run_dir=project / "runs" / "oom", log=lambda s: None,
                callbacks=(_callback(1, _raise(torch.OutOfMemoryError("CUDA out of memory"))),))
    d = e.value.diagnostics[0]
    # the run re-estimates from the data's real token lengths, so the figure is the run's, not the plan's
    assert d.code == "FT705" and re.search(r"estimated a peak of [\d.]+ [KMG]iB \(weights ", d.message)
    assert "no device memory declared" in d.message
    assert "gradient_checkpointing" in d.help and "qlora" in d.help


def _sigterm(model):
    import os
    import signal

    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("stop", ["ctrl_c", "sigterm"])
def test_ctrl_c_leaves_a_resumable_run(stop, project, tiny_llama_dir, capsys):
    from ftlang.backend.run import execute

    plan = _project_plan(project, tiny_llama_dir)
    run = project / "runs" / "int"
    act = _raise(KeyboardInterrupt()) if stop == "ctrl_c" else _sigterm
    code = execute(plan, run_dir=run, log=lambda s: None, callbacks=(_callback(3, act),))
    assert code == 130
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert "--resume" in capsys.readouterr().err
    assert execute(plan, resume=run, log=lambda s: None) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "done" and record["resumed_from"].endswith("checkpoint-2")
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    for name in ("plan.json", "data.json", "metrics.jsonl", "ranks/rank-0.json"):
        assert (run / name).is_file(), name
    assert Plan.from_json((run / "plan.json").read_text()).sha256 == plan.sha256


def test_eval_packing_gives_the_trainer_the_same_val_loss(tiny_llama_dir, tmp_path):
    """eval { packing }: the Trainer evaluates packed validation bins (its eval collator builds the 4D
    mask while training stays unpacked) and logs the same val_loss as on the unpacked rows."""
    from ftlang.data.packing import PackedCollator, PackedRows, pack_bins

    plan = tiny_plan(tiny_llama_dir, LORA, train={"max_steps": 2}, eval={"batch": 8})
    val_losses = {}
    for packed in (False, True):
        tok, model = _fresh(plan)
        data = lm_data(tok)
        if packed:
            data.validation = PackedRows.of(data.validation, pack_bins([len(r["input_ids"]) for r in data.validation],
                                                                       256))
            assert len(data.validation) < 4
            data.eval_packed = True
            data.eval_collator = lambda d=data: PackedCollator(d.pad_id)
        result = train(RunContext(plan=plan, run_dir=tmp_path / str(packed), model=model, tokenizer=tok, data=data,
                                  log=lambda s: None), tty=False)
        val_losses[packed] = [r["val_loss"] for r in result.history if "val_loss" in r]
    assert len(val_losses[True]) == 1
    assert abs(val_losses[True][0] - val_losses[False][0]) <= 1e-4
