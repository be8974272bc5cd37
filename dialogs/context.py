"""What goes to the model: the system prompt, as much recent history as fits, the new message."""

from dataclasses import dataclass

from common.errors import GatewayError
from llm_models.providers.tokens import count_messages

# count_messages() adds the reply priming once per call; one message alone costs this much less.
_REPLY_PRIMING = 3


class ContextTooLong(GatewayError):
    status = 422
    type = "context_length_exceeded"


@dataclass
class FittedPrompt:
    messages: list[dict]
    prompt_tokens: int
    dropped: int  # history messages left out, oldest first


def fit_to_context(
    *, model, system_prompt: str, history: list[dict], new_message: dict, max_tokens: int
) -> FittedPrompt:
    """Drop the oldest turns until the prompt fits `context_window - max_tokens`.

    The system prompt is never dropped; a new message that cannot fit even alone is a 422.
    """
    budget = model.context_window - max_tokens

    def cost(message: dict) -> int:
        return count_messages(model.provider, model.provider_model, [message]) - _REPLY_PRIMING

    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    fixed = _REPLY_PRIMING + sum(cost(m) for m in system) + cost(new_message)
    if fixed > budget:
        raise ContextTooLong(
            f"The message needs {fixed} prompt tokens; {model.name} has room for {budget} "
            f"({model.context_window} context window minus {max_tokens} for the reply).",
            prompt_tokens=fixed,
            context_window=model.context_window,
            max_tokens=max_tokens,
            available_tokens=budget,
        )
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
