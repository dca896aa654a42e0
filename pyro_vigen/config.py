"""Configs as dataclasses that serialise to and from JSON.

Every config of the library (model architectures, training settings) derives from
:class:`Config`, so a run directory's ``config.json`` can be read back into the exact
objects that produced it, and a misspelt key is an error rather than a silent default.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

from .errors import UserError

__all__ = ["Config", "require_positive"]

C = TypeVar("C", bound="Config")


@dataclasses.dataclass
class Config:
    """Base class: ``to_dict``/``from_dict`` and ``to_json``/``from_json``.

    Example::

        from pyro_vigen.models import VAEConfig
        config = VAEConfig(data_shape=(2,), latent_dim=4)
        VAEConfig.from_json(config.to_json()) == config   # True: tuples come back as tuples
        config.replace(latent_dim=8).latent_dim           # 8
    """

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        if not isinstance(data, dict):
            raise UserError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"{cls.__name__} has no setting(s) {', '.join(unknown)}; "
                f"known settings: {', '.join(sorted(known))}"
            )
        # JSON has no tuples: restore them where the field's default is a tuple.
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                value = data[f.name]
                if isinstance(value, list) and _is_tuple_field(f):
                    value = tuple(value)
                kwargs[f.name] = value
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)


def _is_tuple_field(field: dataclasses.Field) -> bool:
    if field.default is not dataclasses.MISSING:
        return isinstance(field.default, tuple)
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return isinstance(field.default_factory(), tuple)  # type: ignore[misc]
    return "tuple" in str(field.type)


def require_positive(name: str, value: float, *, integer: bool = False) -> None:
    """Raise :class:`~pyro_vigen.errors.UserError` unless ``value`` is a positive number
    (an int if ``integer``).

    :param str name: the setting's name, for the error message; a field's name
        (``batch_size``) is also the error's ``field``.
    :param value: the value to check.
    :param bool integer: require an ``int`` (``bool`` is refused either way).
    :raises UserError: ``value`` is not positive, or not an integer when one is required.

    Example::

        from pyro_vigen.config import require_positive
        require_positive("lr", 1e-3)                   # passes
        require_positive("steps", 2.5, integer=True)   # UserError: steps must be a positive integer
    """
    field = name if name.isidentifier() else None  # not "each width of gen_hidden"
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise UserError(f"{name} must be a positive integer, got {value!r}", field=field)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise UserError(f"{name} must be positive, got {value!r}", field=field)
