"""The effect-handler stack: messages, messengers and ``apply_stack``.

A model talks to inference only through messages. Each primitive
(``sample``, ``param``, ``plate``, ...) builds a message, a plain dict, and
sends it through the stack of active handlers with :func:`apply_stack`. The
handler entered last (the one closest to the model) receives the message first.
A handler may change the message, for example give it a value, or stop it
from reaching the handlers further out. When no handler gave a value, the
default action runs (draw from the distribution, take the initial value of a
parameter). Then every handler that saw the message gets it back, innermost
last, to record it. These are NumPyro's semantics, so handlers compose the
same way.

A message has these keys:

* ``type``: ``"sample"``, ``"param"``, ``"deterministic"``, ``"plate"`` or
  ``"prng_key"``;
* ``name``: the site name;
* ``fn``: the distribution of a sample site, ``None`` for the other types;
* ``args``, ``kwargs``: what the default action needs (``kwargs["rng_key"]``
  is the random key that ``seed`` supplies, ``kwargs["sample_shape"]`` the
  shape of independent draws of a sample site);
* ``value``: the site's value, ``None`` until a handler or the default
  action sets it;
* ``scale``: a factor on the site's log density (``None`` means 1);
* ``mask``: a boolean array or bool; where false the log density counts 0;
* ``is_observed``: whether the value is data rather than a latent draw;
* ``cond_indep_stack``: the plates the site sits in, innermost last;
* ``infer``: a dict of options for inference algorithms;
* ``stop``: set by ``block`` so outer handlers never see the message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import difflux.core as dx

Message = dict[str, Any]

# The active handlers, outermost first.
_STACK: list[Messenger] = []


class Messenger:
    """Base class of effect handlers.

    A messenger wraps a callable (usually a model) or is used as a context
    manager. While it is active it receives every message sent by the code it
    wraps, through :meth:`process_message` on the way out to the default
    action and :meth:`postprocess_message` on the way back.

    Args:
        fn: the callable to wrap; ``None`` to use the messenger only as a
            context manager.
    """

    def __init__(self, fn: Callable[..., Any] | None = None) -> None:
        if fn is not None and not callable(fn):
            raise TypeError(
                f"{type(self).__name__} expects a callable (a model or guide) as fn, got "
                f"{type(fn).__name__}. Pass the function itself, not the result of calling it."
            )
        self.fn = fn
        if fn is not None:
            functools.update_wrapper(self, fn, updated=[])

    def __enter__(self) -> Any:
        _STACK.append(self)
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        # After an exception, handlers entered inside this one may not have
        # exited; they are removed with it so the stack stays consistent.
        for position in range(len(_STACK) - 1, -1, -1):
            if _STACK[position] is self:
                del _STACK[position:]
                return

    def process_message(self, msg: Message) -> None:
        """Act on a message on its way to the default action."""

    def postprocess_message(self, msg: Message) -> None:
        """Act on a message after it has its value."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fn is None:
            raise TypeError(
                f"this {type(self).__name__} handler wraps no function. Pass the model as its first "
                f"argument, {type(self).__name__}(model, ...), or use it as a context manager."
            )
        with self:
            return self.fn(*args, **kwargs)


def new_message(msg_type: str, name: str, **fields: Any) -> Message:
    """Return a message of ``msg_type`` for site ``name`` with every key set to its default."""
    msg: Message = {
        "type": msg_type,
        "name": name,
        "fn": None,
        "args": (),
        "kwargs": {},
        "value": None,
        "scale": None,
        "mask": None,
        "is_observed": False,
        "cond_indep_stack": [],
        "infer": {},
        "stop": False,
        "intermediates": [],
    }
    msg.update(fields)
    return msg


def apply_stack(msg: Message) -> Message:
    """Send ``msg`` through the active handlers, run the default action, and return it."""
    seen = 0
    for handler in reversed(_STACK):
        seen += 1
        handler.process_message(msg)
        if msg["stop"]:
            break

    if msg["value"] is None:
        msg["value"] = _default_value(msg)

    for handler in _STACK[len(_STACK) - seen :]:
        handler.postprocess_message(msg)
    return msg


def _missing_key(msg: Message) -> RuntimeError:
    return RuntimeError(
        f"the {msg['type']} site {msg['name']!r} needs a random key but none was given. Run the model "
        "under ppl.handlers.seed(model, rng_seed=dx.random.key(0)), or pass rng_key= to the primitive."
    )


def _default_value(msg: Message) -> Any:
    """Compute a site's value when no handler set one."""
    kind = msg["type"]
    key = msg["kwargs"].get("rng_key")
    if kind == "sample":
        if key is None:
            raise _missing_key(msg)
        return msg["fn"].sample(key, msg["kwargs"].get("sample_shape", ()))
    if kind == "param":
        init_value = msg["args"][0]
        if callable(init_value):
            if key is None:
                raise _missing_key(msg)
            return init_value(key)
        return init_value
    if kind == "plate":
        size, subsample_size = msg["args"]
        if subsample_size >= size:
            return dx.arange(size)
        if key is None:
            raise _missing_key(msg)
        return dx.random.permutation(key, size)[:subsample_size]
    if kind == "prng_key":
        if key is None:
            raise _missing_key(msg)
        return key
    raise ValueError(f"the {kind} site {msg['name']!r} has no value; give it one when sending the message")
