"""What goes to the model: the system prompt, as much recent history as fits, the new message."""

from dataclasses import dataclass

from completions.core import context_too_long
from llm_models.models import LLMModel
from llm_models.providers.tokens import count_messages

# count_messages() adds the reply priming once per call; one message alone costs this much less.
_REPLY_PRIMING = 3


@dataclass
class FittedPrompt:
    messages: list[dict]
    prompt_tokens: int
    dropped: int  # history messages left out, oldest first


def fit_to_context(
    *, model: LLMModel, system_prompt: str, history: list[dict], new_message: dict, max_tokens: int | None
) -> FittedPrompt:
    """Drop the oldest turns until the prompt leaves room for the reply: `max_tokens`, or when
    none is set the model's whole output limit (a dialog keeps room for a full answer).

    The system prompt is never dropped. A new message that leaves less room than that is sent
    alone if no max_tokens was set (the reply gets what the window leaves), else refused.
    """
    budget = model.context_window - (max_tokens or model.max_output_tokens)

    def cost(message: dict) -> int:
        return count_messages(model.provider, model.provider_model, [message]) - _REPLY_PRIMING

    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    fixed = _REPLY_PRIMING + sum(cost(m) for m in system) + cost(new_message)
    if fixed > budget:  # the new message leaves less room than wanted even alone
        if max_tokens is not None or fixed >= model.context_window:
            raise context_too_long(model, prompt_tokens=fixed, max_tokens=max_tokens or 0)
        budget = fixed
    kept: list[dict] = []
    used = fixed
    for message in reversed(history):
        needed = cost(message)
        if used + needed > budget:
            break
        kept.append(message)
        used += needed
    kept.reverse()
    while kept and kept[0]["role"] == "assistant":  # a turn starts with the user's message
        used -= cost(kept.pop(0))
    return FittedPrompt(system + kept + [new_message], used, len(history) - len(kept))
