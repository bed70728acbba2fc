"""The base of every configuration model: camelCase keys, unknown keys refused, frozen.

Its own module so that the parts of the schema kept apart (``cosmolet.config.peers``) share it
with ``cosmolet.config.schema`` without importing each other.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )
