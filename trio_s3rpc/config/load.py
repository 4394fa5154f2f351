"""Reading a config file: YAML (duplicate keys refused), then expand and validate."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

from trio_s3rpc.config.addresses import _parse_rpc, _workers_rpc
from trio_s3rpc.config.buckets import parse_bucket_section
from trio_s3rpc.config.expansion import _expand_tree
from trio_s3rpc.config.model import BucketConfig, Config, ConfigError, ServerConfig
from trio_s3rpc.config.scalars import _Context, _join, _Section, _type_name, check_bucket_name
from trio_s3rpc.config.sections import _parse_s3


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a RoadRunner config file; ``env`` defaults to os.environ."""
    source = os.fspath(path)
    return parse_config(load_document(source), env, source=source)


def load_document(path: str | os.PathLike[str]) -> Any:
    """A config file's YAML document, not yet expanded nor validated.

    The supervisor hands this to its workers, which parse it as
    :func:`load_config` would (with the same environment).
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {source}: it is not UTF-8 text") from None
    return _parse_yaml(text, source)


def parse_config(
    data: Any, env: Mapping[str, str] | None = None, *, source: str = "<config>"
) -> Config:
    """Validate an already-parsed YAML document (a mapping of sections)."""
    try:
        return _parse_document(data, os.environ if env is None else env)
    except ConfigError as exc:
        if source == "<config>":
            raise
        raise ConfigError(exc.message, _join(exc.details, f"in {source}")) from None


def parse_bucket(
    name: str, raw: Mapping[str, Any], servers: Mapping[str, ServerConfig]
) -> BucketConfig:
    """One bucket's settings, as in ``s3.buckets.<name>``; used by s3.RegisterBucket too.

    Values are taken as given (no ``${VAR}`` expansion); warnings are dropped.
    """
    check_bucket_name(name, "name")
    context = _Context({})
    return parse_bucket_section(name, _Section(raw, f"s3.buckets.{name}", context), servers)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, as RoadRunner's YAML parser does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        # Only the problem text: the snippet of the offending line may hold a secret.
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {type(exc).__name__}") from None


def _parse_document(data: Any, env: Mapping[str, str]) -> Config:
    if data is None:
        raise ConfigError("the config is empty; it needs an s3 section")
    if not isinstance(data, Mapping):
        raise ConfigError(f"the config must be a mapping of sections, got {_type_name(data)}")
    if data.get("s3") is None:
        raise ConfigError("s3: section missing; it needs servers and buckets")
    context = _Context(env)
    # Only our two sections are expanded: the others are RoadRunner's business.
    rpc = _Section(_expand_tree(data.get("rpc"), "rpc", context), "rpc", context)
    s3 = _Section(_expand_tree(data["s3"], "s3", context), "s3", context)
    rpc_settings = _parse_rpc(rpc, s3, _workers_rpc(data, context))
    rpc.warn_unknown()
    s3_settings = _parse_s3(s3)
    return Config(rpc_settings, s3_settings, tuple(context.warnings))
