"""How many retrieved chunks a feature run can carry: the context budget.

A grounded run sends the prompt (system, few-shot, the context message, the user's input, the
output contract's schema) plus the chunks, and must leave room for the answer. The budget is
the smallest context window among the deployments the feature's alias may fall back to, minus
the prompt rendered without chunks, minus the answer reserve: the run's ``max_tokens`` (or the
deployments' largest output, as the gateway assumes), twice over plus the correction message
for a feature with an output contract, whose one corrective retry resends the first answer.

Counts are cl100k_base tokens (``retrieval.tokens``); other providers' tokenizers differ by a
few percent, which ``SAFETY_TOKENS`` and the per-message allowance absorb for prompts of
ordinary size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from retrieval.tokens import count_tokens

logger = logging.getLogger(__name__)

PER_MESSAGE_TOKENS = 4  # role and framing of each chat message
CORRECTION_TOKENS = 200  # the corrective retry's own message, naming the problem
SAFETY_TOKENS = 64


@dataclass(frozen=True)
class ContextBudget:
    context_window: int
    prompt_tokens: int
    answer_reserve: int

    @property
    def tokens(self) -> int:
        """What the chunks may use (never negative)."""
        return max(0, self.context_window - self.prompt_tokens - self.answer_reserve)


def chunk_block(chunk_id: str, title: str, text: str) -> str:
    """A chunk as ``prompts.rendering.render_messages`` puts it in the context message."""
    return f'<document id="{chunk_id}" title="{title}">\n{text}\n</document>'


def chunk_tokens(chunk_id: str, title: str, text: str) -> int:
    return count_tokens(chunk_block(chunk_id, title, text)) + 1  # the blank line between


def _messages_tokens(messages: Iterable[dict]) -> int:
    total = 0
    for message in messages:
        content = message.get("content")
        total += PER_MESSAGE_TOKENS + (count_tokens(content) if isinstance(content, str) else 0)
    return total


def serving_versions(feature: Any) -> list[Any]:
    """The versions a run of ``feature`` may be served by now (the active one and every arm of
    an A/B split); the budget holds for whichever the run gets."""
    from prompts.models import FeatureDeployment, PromptVersion

    deployment = FeatureDeployment.objects.filter(feature=feature).first()
    if deployment is None:
        return []
    ids = {deployment.active_version_id} | {arm["version_id"] for arm in deployment.split or []}
    return list(PromptVersion.objects.filter(pk__in=[i for i in ids if i is not None]))


def context_budget(
    *, tenant: Any, feature: Any, data: dict, versions: Sequence[Any]
) -> ContextBudget | None:
    """The budget of a run of ``feature`` with input ``data`` under the tightest of
    ``versions``; None when there is nothing to measure against (no version published).

    Raises what the run itself would raise: ``InvalidRequest`` for input that does not fit the
    version, ``NotFound``/``PermissionDenied`` for a model alias the tenant may not use.
    """
    from gateway.service import resolve_deployments
    from prompts.rendering import render_messages

    if not versions:
        return None
    deployments = resolve_deployments(tenant, feature.model_alias)
    window = min(d.context_window for d in deployments)
    largest_output = max(d.max_output_tokens for d in deployments)
    tightest: ContextBudget | None = None
    for version in versions:
        # Rendered with no chunks: the context message's frame is counted, its documents not.
        prompt = _messages_tokens(render_messages(version, data, context=[]))
        contract = version.contract or {}
        if contract.get("kind", "text") != "text":
            prompt += count_tokens(json.dumps(contract, separators=(",", ":")))
        answer = int((version.params or {}).get("max_tokens") or largest_output)
        reserve = answer + SAFETY_TOKENS
        if contract.get("kind", "text") != "text":
            reserve += answer + CORRECTION_TOKENS
        budget = ContextBudget(window, prompt, reserve)
        if tightest is None or budget.tokens < tightest.tokens:
            tightest = budget
    if tightest is not None and tightest.tokens == 0:
        logger.warning(
            "feature %s: the prompt and answer reserve fill the %s-token window; no documents fit",
            feature.slug,
            window,
        )
    return tightest
