"""`export { push = "org/name" }`: upload the exported model to the Hugging Face Hub after the gates pass.

The merged model is pushed when there is one, else the adapter (or the fully trained model). The run's
artifacts are complete before the push starts, so a failed push (FT850: offline, no token, a bad repo id)
loses nothing. Tests never push: they check the offline refusal only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ftlang.diagnostics import DiagnosticError, error
from ftlang.plan import Plan
from ftlang.source import loc_span

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def push_folder(exported: Any) -> Path:
    """What a push uploads: the merged model, else the adapter, else the fully trained model."""
    return next(p for p in (exported.merged_dir, exported.adapter_dir, exported.model_dir) if p is not None)


def push_to_hub(plan: Plan, folder: Path) -> dict:
    """Upload `folder` to the plan's hub repo (created private when missing); FT850 when it cannot."""
    repo = plan.export.push or ""
    where = loc_span(plan.export.loc)
    if not _REPO_ID.match(repo):
        raise DiagnosticError(error("FT850", f"`push = \"{repo}\"` is not a hub repo id", where,
                                    help='write push = "org/name"'))
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    if constants.HF_HUB_OFFLINE:
        raise DiagnosticError(error(
            "FT850", f"cannot push to {repo}: the Hugging Face Hub is offline here (HF_HUB_OFFLINE=1)", where,
            help=f"the export is complete in the run directory; push it later with `huggingface-cli upload {repo} "
                 f"{folder}`, or rerun without HF_HUB_OFFLINE"))
    api = HfApi()
    try:
        api.create_repo(repo, exist_ok=True, private=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo,
                                 commit_message=f"ftlang: {plan.recipe.name} (plan {plan.short_hash})")
    except (HfHubHTTPError, OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DiagnosticError(error(
            "FT850", f"cannot push to {repo}: {first}", where,
            help="log in with write access (huggingface-cli login, or HF_TOKEN) and check the repo id; the export "
                 f"is complete in {folder}")) from None
    return {"repo": repo, "folder": str(folder), "commit": getattr(info, "oid", None),
            "url": getattr(info, "commit_url", None)}
