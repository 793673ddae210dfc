"""Types shared by both HTTP signature schemes and by ``federation.httpsig``.

They live apart from ``httpsig.py`` so that the scheme modules can use them while
``httpsig.py`` imports the scheme modules to dispatch between them.
Import them from ``federation.httpsig``; this module is an implementation detail.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import NamedTuple, Protocol, TypeGuard, TypeVar
from urllib.parse import SplitResult, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from federation.keys import KeyAlgorithm, PrivateKey, PublicKey, PublicKeyInfo

_DEFAULT_PORTS = {"http": 80, "https": 443}


class SignatureScheme(enum.Enum):
    CAVAGE = "draft-cavage-12"
    RFC9421 = "rfc9421"


class SignatureVerdict(enum.Enum):
    OK = "ok"
    NO_SIGNATURE = "no_signature"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    KEY_FETCH_FAILED = "key_fetch_failed"
    BAD_SIGNATURE = "bad_signature"
    DIGEST_MISMATCH = "digest_mismatch"
    TOO_OLD = "too_old"
    IN_FUTURE = "in_future"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    MISSING_COMPONENT = "missing_component"
    ACTOR_MISMATCH = "actor_mismatch"


class SignatureAlgorithm(enum.Enum):
    """Concrete signature algorithms, named as RFC 9421's registry names them."""

    RSA_V1_5_SHA256 = "rsa-v1_5-sha256"
    RSA_PSS_SHA512 = "rsa-pss-sha512"
    ED25519 = "ed25519"


class _CaseInsensitiveHeaders(Mapping[str, str]):
    """A read-only header mapping whose lookups ignore the case of the name."""

    __slots__ = ("_items",)

    def __init__(self, headers: Mapping[str, str]) -> None:
        items: dict[str, tuple[str, str]] = {}
        for name, value in headers.items():  # a multidict may repeat a name: join the values
            key = name.lower()
            items[key] = (name, f"{items[key][1]}, {value}") if key in items else (name, value)
        self._items = items

    def merged(self, extra: Mapping[str, str]) -> _CaseInsensitiveHeaders:
        """A copy with ``extra`` set, replacing same-named headers."""
        copy = _CaseInsensitiveHeaders({})
        copy._items = dict(self._items)
        for name, value in extra.items():
            copy._items[name.lower()] = (name, value)
        return copy

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        entry = self._items.get(name.lower())
        return default if entry is None else entry[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return {k.lower(): v for k, v in self.items()} == {
            str(k).lower(): v for k, v in other.items()
        }

    def __hash__(self) -> int:
        return hash(frozenset((k, v) for k, (_, v) in self._items.items()))

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True)
class RequestParts:
    """A transport-neutral view of an HTTP request.

    ``url`` is the absolute target URI as the request addressed it: a server builds it
    from its public scheme, the ``Host`` header and the request target (RFC 9421's
    ``@authority`` comes from it). ``headers`` are looked up case-insensitively; a
    multidict (aiohttp's ``request.headers``) may be passed as it is: values of a
    repeated header are joined with ", " as both signature schemes require.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.headers, _CaseInsensitiveHeaders):
            object.__setattr__(self, "headers", _CaseInsensitiveHeaders(self.headers))

    def header(self, name: str) -> str | None:
        # A verification looks up about ten headers: straight into the lower-cased items
        # (headers is always _CaseInsensitiveHeaders, see __post_init__).
        entry = self.headers._items.get(name.lower())  # type: ignore[attr-defined]
        return None if entry is None else entry[1]

    @classmethod
    def with_overrides(cls, method: str, url: str, headers: Mapping[str, str], body: bytes,
                       overrides: Mapping[str, str]) -> RequestParts:
        """``RequestParts(method, url, headers, body).with_headers(overrides)`` with one
        copy of the headers instead of two (the inbox builds one for every request)."""
        merged = _CaseInsensitiveHeaders(headers)
        for name, value in overrides.items():
            merged._items[name.lower()] = (name, value)  # noqa: SLF001 - our own copy
        # The fields set in one update, as __init__ would set them (headers is already
        # _CaseInsensitiveHeaders, all __post_init__ sees to): a frozen dataclass pays
        # an object.__setattr__ call per field (a test holds the two ways equal).
        parts = object.__new__(cls)
        parts.__dict__.update(method=method, url=url, headers=merged, body=body)
        return parts

    def with_headers(self, extra: Mapping[str, str]) -> RequestParts:
        """A copy with ``extra`` headers set (replacing same-named ones)."""
        headers = self.headers
        if not isinstance(headers, _CaseInsensitiveHeaders):  # pragma: no cover - see post_init
            headers = _CaseInsensitiveHeaders(headers)
        return RequestParts(self.method, self.url, headers.merged(extra), self.body)


@dataclass(frozen=True)
class TimeWindow:
    """How far a signature's ``Date``/``created`` may lie from the verifier's clock."""

    max_age: timedelta = timedelta(hours=12)
    max_future: timedelta = timedelta(hours=1)


# A NamedTuple, not a frozen dataclass: as immutable, but built for every signed request
# for a fifth of the cost (a frozen dataclass pays an object.__setattr__ call per field).
class VerificationResult(NamedTuple):
    verdict: SignatureVerdict
    scheme: SignatureScheme | None = None
    key_id: str | None = None
    signer: str | None = None  # the actor id that owns the key, when known
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict is SignatureVerdict.OK


@dataclass(frozen=True)
class KeyLookup:
    """What a key resolver found: a key, or why there is none."""

    key: PublicKeyInfo | None
    verdict: SignatureVerdict | None = None  # UNKNOWN_KEY or KEY_FETCH_FAILED when key is None


class KeyResolver(Protocol):
    async def __call__(self, key_id: str, *, refresh: bool = False) -> KeyLookup: ...


class SignatureFormatError(ValueError):
    """A signature header could not be parsed; the message names the field."""


# Not frozen: built for every signed request, and a frozen dataclass pays an
# object.__setattr__ call per field (~10x a plain one). Nothing changes it.
@dataclass(slots=True)
class ParsedSignature:
    """One signature taken apart, ready to be checked, whichever scheme it came from.

    ``covered`` holds lower-case component names as the scheme spells them:
    ``(request-target)``/``host``/``digest`` for draft-cavage,
    ``@method``/``@target-uri``/``content-digest`` for RFC 9421.
    ``algorithm`` is the declared name, lower-cased, or None when none was declared.
    """

    scheme: SignatureScheme
    key_id: str
    algorithm: str | None
    covered: tuple[str, ...]
    signature: bytes
    signature_base: bytes
    created: datetime | None = None
    expires: datetime | None = None


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_DIGITS = {name: f"{number:02d}" for number, name in enumerate(_MONTHS, start=1)}
# IMF-fixdate, the one form RFC 9110 lets senders use; its fields sit at fixed offsets.
_IMF_FIXDATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct"
    r"|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


def http_date(moment: datetime) -> str:
    """``Sun, 05 Jan 2014 21:31:40 GMT`` for an aware datetime (locale-independent)."""
    utc = moment.astimezone(UTC)
    return (
        f"{_DAYS[utc.weekday()]}, {utc.day:02d} {_MONTHS[utc.month - 1]} {utc.year:04d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} GMT"
    )


# Pure, and every request of the same second carries the same Date, whoever sent it.
@lru_cache(maxsize=256)
def parse_http_date(value: str) -> datetime:
    """Parse an HTTP date; the usual IMF-fixdate form quickly, the obsolete ones too."""
    if _IMF_FIXDATE.fullmatch(value) is not None:
        # "Sun, 06 Nov 1994 08:49:37 GMT" -> "1994-11-06T08:49:37+00:00": the fields sit at
        # fixed offsets and fromisoformat (C) checks the ranges, for a third of what six
        # int() calls and the constructor cost; "+00:00" gives the UTC singleton.
        iso = f"{value[12:16]}-{_MONTH_DIGITS[value[8:11]]}-{value[5:7]}T{value[17:25]}+00:00"
        try:
            return datetime.fromisoformat(iso)
        except ValueError as exc:
            raise SignatureFormatError(f"Date header is not a valid date: {value!r}") from exc
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError) as exc:
        raise SignatureFormatError(f"Date header is not an HTTP date: {value!r}") from exc
    if parsed.tzinfo is None:
        raise SignatureFormatError(f"Date header has no time zone: {value!r}")
    return parsed


def encode_base(text: str, header: str) -> bytes:
    """A signature base as UTF-8; a covered value with undecodable bytes (a server hands
    them on as surrogates) is a malformed request, not a crash."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SignatureFormatError(f"{header}: a covered value is not valid UTF-8") from exc


@lru_cache(maxsize=256)  # pure; the signatures made in the same second share ``created``
def from_unix_time(value: int, field_name: str) -> datetime:
    """An aware datetime for a signature's ``created``/``expires`` parameter."""
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise SignatureFormatError(f"{field_name} {value} is not a usable time") from exc


@lru_cache(maxsize=1024)  # pure; asked for every request, of the few URLs a server serves
def authority_of(url: str) -> str:
    """Lower-case ``host[:port]`` of an absolute URL, default ports left out."""
    return authority_from_parts(urlsplit(url), url)


def authority_from_parts(parts: SplitResult, url: str) -> str:
    """``host[:port]`` from split URL parts; read from ``netloc`` directly because the
    ``hostname``/``port`` properties cost more than the rest of a signature base."""
    netloc = parts.netloc.rpartition("@")[2].lower()
    host, port = netloc, ""
    if not netloc.endswith("]"):  # "[::1]" has no port; "[::1]:8080" and "a.example:80" do
        head, separator, tail = netloc.rpartition(":")
        if separator:
            host, port = head, tail
    if not port:
        return host
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise SignatureFormatError(f"url has an invalid port: {url!r}")
    if _DEFAULT_PORTS.get(parts.scheme.lower()) == int(port):
        return host
    return f"{host}:{int(port)}"


def path_and_query(url: str) -> tuple[str, str]:
    """The path (``/`` when empty) and the query without ``?`` ("" when absent)."""
    parts = urlsplit(url)
    return parts.path or "/", parts.query


class ComponentMissingError(ValueError):
    """A component the signature covers is absent from the request."""


class UnsupportedAlgorithmError(ValueError):
    """The declared algorithm is unknown, or does not fit the key's type."""


_PSS_SHA512 = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
_PSS_SHA512_MIN_BITS = 8 * (64 + 64 + 2)  # hash, salt and two bytes of encoding must fit
# Built once: padding and hash objects hold no state, and every request needs them.
_PKCS1V15, _SHA256, _SHA512 = padding.PKCS1v15(), hashes.SHA256(), hashes.SHA512()
# Bound once: each ``SignatureAlgorithm.X`` read goes through EnumType.__getattr__.
_ED25519 = SignatureAlgorithm.ED25519
_RSA_V1_5_SHA256 = SignatureAlgorithm.RSA_V1_5_SHA256
_RSA_PSS_SHA512 = SignatureAlgorithm.RSA_PSS_SHA512


def sign_bytes(private_key: PrivateKey, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
    if algorithm is _ED25519 and isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(data)
    if isinstance(private_key, rsa.RSAPrivateKey):
        if algorithm is _RSA_V1_5_SHA256:
            return private_key.sign(data, _PKCS1V15, _SHA256)
        if algorithm is _RSA_PSS_SHA512:
            if private_key.key_size < _PSS_SHA512_MIN_BITS:
                raise UnsupportedAlgorithmError("rsa-pss-sha512 needs an RSA key of 1040+ bits")
            return private_key.sign(data, _PSS_SHA512, _SHA512)
    raise UnsupportedAlgorithmError(f"{algorithm.value} cannot be used with this key")


# Classes found to be subclasses of these ABCs (cryptography registers its key classes as
# virtual subclasses): a positive ABC isinstance costs ~0.8 us, a set lookup ~40 ns, and a
# registered class never stops being a subclass. Only ever a handful of classes.
_RSA_PUBLIC_CLASSES: set[type] = set()
_Key = TypeVar("_Key")
_ED25519_PUBLIC_CLASSES: set[type] = set()


def _is_key_of(value: object, abc: type[_Key], known: set[type]) -> TypeGuard[_Key]:
    """``isinstance(value, abc)``, with the classes that are subclasses remembered."""
    kind = type(value)
    if kind in known:
        return True
    if issubclass(kind, abc):
        known.add(kind)
        return True
    return isinstance(value, abc)  # e.g. a __class__ that claims the ABC


def signature_matches(
    public_key: PublicKey, algorithm: SignatureAlgorithm, signature: bytes, data: bytes
) -> bool:
    try:
        if algorithm is _ED25519 and _is_key_of(public_key, ed25519.Ed25519PublicKey,
                                                _ED25519_PUBLIC_CLASSES):
            public_key.verify(signature, data)
            return True
        if _is_key_of(public_key, rsa.RSAPublicKey, _RSA_PUBLIC_CLASSES):
            if algorithm is _RSA_V1_5_SHA256:
                public_key.verify(signature, data, _PKCS1V15, _SHA256)
                return True
            if algorithm is _RSA_PSS_SHA512:
                public_key.verify(signature, data, _PSS_SHA512, _SHA512)
                return True
    except (InvalidSignature, ValueError):  # ValueError: e.g. a key too small for PSS-SHA512
        return False
    return False


def default_algorithms(key_algorithm: KeyAlgorithm) -> tuple[SignatureAlgorithm, ...]:
    """What an undeclared (or ``hs2019``) algorithm means for a key of this type.

    For RSA, PKCS#1 v1.5 with SHA-256 comes first: it is what Mastodon and most of
    the fediverse produce even under the name ``hs2019``.
    """
    if key_algorithm is KeyAlgorithm.ED25519:
        return (_ED25519,)
    return (_RSA_V1_5_SHA256, _RSA_PSS_SHA512)


def key_fits(algorithm: SignatureAlgorithm, key_algorithm: KeyAlgorithm) -> bool:
    if algorithm is _ED25519:
        return key_algorithm is KeyAlgorithm.ED25519
    return key_algorithm is KeyAlgorithm.RSA
