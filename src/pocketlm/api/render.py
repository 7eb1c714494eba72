"""Engine results -> response models: usage, logprobs and finish reasons in each client's spelling."""

from __future__ import annotations

from pocketlm.api import schemas
from pocketlm.engine.outputs import Sample, SampleFinished, TextDelta, TokenLogprob, Usage


def usage(u: Usage) -> schemas.Usage:
    return schemas.Usage(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, total_tokens=u.total_tokens)


def completion_logprobs(logprobs, text_offset: int) -> schemas.CompletionLogprobs:
    """OpenAI's legacy completions layout: parallel lists, alternatives as {token: logprob}."""
    out = schemas.CompletionLogprobs()
    for lp in logprobs:
        out.tokens.append(lp.token)
        out.token_logprobs.append(lp.logprob)
        out.top_logprobs.append({alt.token: alt.logprob for alt in lp.top})
        out.text_offset.append(text_offset)
        text_offset += len(lp.token)
    return out


def chat_logprobs(logprobs) -> schemas.ChatLogprobs:
    return schemas.ChatLogprobs(content=[_chat_token(lp) for lp in logprobs])


def _chat_token(lp: TokenLogprob) -> schemas.TokenLogprob:
    return schemas.TokenLogprob(
        token=lp.token, logprob=lp.logprob, bytes=list(lp.bytes),
        top_logprobs=[schemas.TopLogprob(token=a.token, logprob=a.logprob, bytes=list(a.bytes)) for a in lp.top],
    )


def tgi_finish_reason(finished: SampleFinished | Sample) -> str:
    reason = finished.reason if isinstance(finished, SampleFinished) else finished.finish_reason
    if reason == "length":
        return "length"
    return "stop_sequence" if finished.stop is not None else "eos_token"


def tgi_token(delta: TextDelta) -> schemas.TGIToken:
    """A TGI token for one delta (a delta is usually one token; if several, the last one's id)."""
    token_id = delta.token_ids[-1] if delta.token_ids else 0
    logprob = sum(lp.logprob for lp in delta.logprobs) if delta.logprobs else None
    return schemas.TGIToken(id=token_id, text=delta.text, logprob=logprob, special=False)


def tgi_top_tokens(delta: TextDelta) -> list[schemas.TGIToken] | None:
    if not delta.logprobs or not delta.logprobs[-1].top:
        return None
    return [schemas.TGIToken(id=a.token_id, text=a.token, logprob=a.logprob) for a in delta.logprobs[-1].top]


def tgi_tokens(sample) -> list[schemas.TGIToken]:
    """Per-token details of a finished sample (needs logprobs)."""
    return [schemas.TGIToken(id=lp.token_id, text=lp.token, logprob=lp.logprob) for lp in sample.logprobs]
