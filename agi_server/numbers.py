"""Phone number normalisation (+E.164 inside) and per-trunk caller-ID formatting.

Inside didrouter every DID is ``+`` followed by 8 to 15 digits (ITU-T E.164).
Config may write numbers the way ops staff do (``(555) 765-4321``, ``0044...``,
``15557654321``); :func:`to_e164` normalises them with a default country code.
"""

from __future__ import annotations

import re

from agi_server.errors import DidrouterError

CALLERID_FORMATS = ("e164", "plus_e164", "national")
"""How a trunk wants the caller ID on the wire:

* ``e164``: country code and number, digits only (``15557654321``). The default,
  because most SIP carriers want it and it is what Asterisk shows in ``agi_callerid``.
* ``plus_e164``: with the leading ``+`` (``+15557654321``).
* ``national``: the trunk's ``national_prefix`` then the number without the country
  code (``5557654321`` for NANP, ``02012345678`` for the UK with prefix ``0``).
"""

_PUNCTUATION = re.compile(r"[\s().\-/]")
_DIGITS = re.compile(r"\d+")


class NumberError(DidrouterError, ValueError):
    """A string is not a usable phone number."""


def to_e164(raw: str, default_country: str) -> str:
    """Return ``raw`` as ``+<digits>``.

    ``+...`` and ``00...`` are international already; a number that starts with the
    default country code and is long enough is taken as international; anything else
    gets the default country code prepended (after one national trunk prefix ``0``).
    Raises :class:`NumberError` when the result is not 8 to 15 digits.
    """
    text = _PUNCTUATION.sub("", str(raw).strip())
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    elif text.startswith(default_country) and len(text) > 10:
        digits = text
    else:
        digits = default_country + (text[1:] if text.startswith("0") else text)
    if not _DIGITS.fullmatch(digits) or not 8 <= len(digits) <= 15:
        raise NumberError(f"{raw!r} is not a phone number (want 8 to 15 digits after the country code)")
    return "+" + digits


def format_callerid(e164: str, fmt: str, country: str, national_prefix: str = "") -> str:
    """Render a +E.164 DID the way a trunk sends it (see :data:`CALLERID_FORMATS`)."""
    digits = e164.lstrip("+")
    if fmt == "plus_e164":
        return "+" + digits
    if fmt == "national":
        if digits.startswith(country):
            digits = digits[len(country):]
        return national_prefix + digits
    return digits
