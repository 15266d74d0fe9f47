"""dockrion-schema: the Dockfile contract.

>>> from dockrion_schema import parse_dockspec
>>> spec = parse_dockspec('''
... version: "1.0"
... agent: {name: demo, handler: "app:handle"}
... io_schema: {}
... expose: {}
... ''')
>>> spec.agent.framework
'custom'
"""

from ._a2a import A2aConfig
from ._agent import AgentConfig
from ._auth import (
    PERMISSIONS,
    ApiKeysConfig,
    AuthConfig,
    JWTClaimsConfig,
    JWTConfig,
    OAuth2Config,
    RoleConfig,
    normalize_rate_limit,
)
from ._build import BuildConfig, BuildIncludeConfig
from ._expose import AgUiConfig, ExposeConfig, LangGraphApiConfig, ServerLimits
from ._fields import RATE_WINDOW_SECONDS
from ._io_schema import IOSchema, IOSubSchema
from ._mcp import McpConfig
from ._metadata import Metadata
from ._observability import LangfuseConfig, ModelPrice, Observability
from ._policies import Budget, Policies, SafetyPolicy, ToolPolicy
from ._queue import RunQueueConfig
from ._redaction import MAX_STREAM_REACH, StreamShape, stream_shape
from ._secrets import SecretDefinition, SecretsConfig
from ._streaming import (
    MemoryStreamingConfig,
    RedisSentinelConfig,
    RedisStreamingConfig,
    StreamingConfig,
    StreamingConnectionConfig,
    StreamingEventsConfig,
    StreamingIdGenerator,
)
from ._threads import ThreadsConfig
from ._version import __version__
from .dockfile_v1 import DockSpec
from .env import resolve_environment
from .errors import DockfileError, DockfileIssue, DockfileWarning, DockrionError, ValidationError
from .json_schema import generate_json_schema, get_schema_version, write_json_schema
from .loader import (
    DockfileReport,
    check_dockfile,
    check_dockfile_text,
    load_dockspec,
    parse_dockspec,
)
from .serialize import from_dict, to_dict, to_yaml_string

__all__ = [
    "MAX_STREAM_REACH",
    "PERMISSIONS",
    "RATE_WINDOW_SECONDS",
    "A2aConfig",
    "AgUiConfig",
    "AgentConfig",
    "ApiKeysConfig",
    "AuthConfig",
    "Budget",
    "BuildConfig",
    "BuildIncludeConfig",
    "DockSpec",
    "DockfileError",
    "DockfileIssue",
    "DockfileReport",
    "DockfileWarning",
    "DockrionError",
    "ExposeConfig",
    "IOSchema",
    "IOSubSchema",
    "JWTClaimsConfig",
    "JWTConfig",
    "LangGraphApiConfig",
    "LangfuseConfig",
    "McpConfig",
    "MemoryStreamingConfig",
    "Metadata",
    "ModelPrice",
    "OAuth2Config",
    "Observability",
    "Policies",
    "RedisSentinelConfig",
    "RedisStreamingConfig",
    "RoleConfig",
    "RunQueueConfig",
    "SafetyPolicy",
    "SecretDefinition",
    "SecretsConfig",
    "ServerLimits",
    "StreamShape",
    "StreamingConfig",
    "StreamingConnectionConfig",
    "StreamingEventsConfig",
    "StreamingIdGenerator",
    "ThreadsConfig",
    "ToolPolicy",
    "ValidationError",
    "__version__",
    "check_dockfile",
    "check_dockfile_text",
    "from_dict",
    "generate_json_schema",
    "get_schema_version",
    "load_dockspec",
    "normalize_rate_limit",
    "parse_dockspec",
    "resolve_environment",
    "stream_shape",
    "to_dict",
    "to_yaml_string",
    "write_json_schema",
]
