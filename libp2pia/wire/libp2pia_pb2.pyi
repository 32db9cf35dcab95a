from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DTYPE_UNSPECIFIED: _ClassVar[Tensor.DType]
        FLOAT32: _ClassVar[Tensor.DType]
        FLOAT16: _ClassVar[Tensor.DType]
        BFLOAT16: _ClassVar[Tensor.DType]
        INT32: _ClassVar[Tensor.DType]
    DTYPE_UNSPECIFIED: Tensor.DType
    FLOAT32: Tensor.DType
    FLOAT16: Tensor.DType
    BFLOAT16: Tensor.DType
    INT32: Tensor.DType
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: Tensor.DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[_Union[Tensor.DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "fragment_id")
    class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CODE_UNSPECIFIED: _ClassVar[Error.Code]
        UNKNOWN_SHARD: _ClassVar[Error.Code]
        UNKNOWN_SESSION: _ClassVar[Error.Code]
        OVERLOADED: _ClassVar[Error.Code]
        BAD_REQUEST: _ClassVar[Error.Code]
        INTERNAL: _ClassVar[Error.Code]
    CODE_UNSPECIFIED: Error.Code
    UNKNOWN_SHARD: Error.Code
    UNKNOWN_SESSION: Error.Code
    OVERLOADED: Error.Code
    BAD_REQUEST: Error.Code
    INTERNAL: Error.Code
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FRAGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    code: Error.Code
    message: str
    fragment_id: str
    def __init__(self, code: _Optional[_Union[Error.Code, str]] = ..., message: _Optional[str] = ..., fragment_id: _Optional[str] = ...) -> None: ...

class ShardCall(_message.Message):
    __slots__ = ("fragment_id", "kind", "layer", "positions", "x", "weight", "top_k", "embeddings")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[ShardCall.Kind]
        EMBED: _ClassVar[ShardCall.Kind]
        ATTENTION: _ClassVar[ShardCall.Kind]
        FFN: _ClassVar[ShardCall.Kind]
        LOGITS: _ClassVar[ShardCall.Kind]
    KIND_UNSPECIFIED: ShardCall.Kind
    EMBED: ShardCall.Kind
    ATTENTION: ShardCall.Kind
    FFN: ShardCall.Kind
    LOGITS: ShardCall.Kind
    FRAGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    fragment_id: str
    kind: ShardCall.Kind
    layer: int
    positions: _containers.RepeatedScalarFieldContainer[int]
    x: Tensor
    weight: float
    top_k: int
    embeddings: bool
    def __init__(self, fragment_id: _Optional[str] = ..., kind: _Optional[_Union[ShardCall.Kind, str]] = ..., layer: _Optional[int] = ..., positions: _Optional[_Iterable[int]] = ..., x: _Optional[_Union[Tensor, _Mapping]] = ..., weight: _Optional[float] = ..., top_k: _Optional[int] = ..., embeddings: _Optional[bool] = ...) -> None: ...

class ShardResult(_message.Message):
    __slots__ = ("fragment_id", "y", "ids", "embeddings")
    FRAGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    fragment_id: str
    y: Tensor
    ids: Tensor
    embeddings: Tensor
    def __init__(self, fragment_id: _Optional[str] = ..., y: _Optional[_Union[Tensor, _Mapping]] = ..., ids: _Optional[_Union[Tensor, _Mapping]] = ..., embeddings: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class ComputeRequest(_message.Message):
    __slots__ = ("calls", "result_dtype")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    RESULT_DTYPE_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[ShardCall]
    result_dtype: Tensor.DType
    def __init__(self, calls: _Optional[_Iterable[_Union[ShardCall, _Mapping]]] = ..., result_dtype: _Optional[_Union[Tensor.DType, str]] = ...) -> None: ...

class ComputeResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ShardResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ShardResult, _Mapping]]] = ...) -> None: ...

class RunPhase(_message.Message):
    __slots__ = ("kind", "layer", "fragment_ids")
    KIND_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    FRAGMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    kind: ShardCall.Kind
    layer: int
    fragment_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[ShardCall.Kind, str]] = ..., layer: _Optional[int] = ..., fragment_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("phases", "positions", "h", "attention_inputs", "activation_dtype")
    PHASES_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    H_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_INPUTS_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_DTYPE_FIELD_NUMBER: _ClassVar[int]
    phases: _containers.RepeatedCompositeFieldContainer[RunPhase]
    positions: _containers.RepeatedScalarFieldContainer[int]
    h: Tensor
    attention_inputs: bool
    activation_dtype: Tensor.DType
    def __init__(self, phases: _Optional[_Iterable[_Union[RunPhase, _Mapping]]] = ..., positions: _Optional[_Iterable[int]] = ..., h: _Optional[_Union[Tensor, _Mapping]] = ..., attention_inputs: _Optional[bool] = ..., activation_dtype: _Optional[_Union[Tensor.DType, str]] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("h", "attention_inputs")
    H_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_INPUTS_FIELD_NUMBER: _ClassVar[int]
    h: Tensor
    attention_inputs: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, h: _Optional[_Union[Tensor, _Mapping]] = ..., attention_inputs: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class OpenSession(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CloseSession(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Request(_message.Message):
    __slots__ = ("id", "session_id", "compute", "open", "close", "run")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    id: int
    session_id: str
    compute: ComputeRequest
    open: OpenSession
    close: CloseSession
    run: RunRequest
    def __init__(self, id: _Optional[int] = ..., session_id: _Optional[str] = ..., compute: _Optional[_Union[ComputeRequest, _Mapping]] = ..., open: _Optional[_Union[OpenSession, _Mapping]] = ..., close: _Optional[_Union[CloseSession, _Mapping]] = ..., run: _Optional[_Union[RunRequest, _Mapping]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("id", "compute", "ack", "error", "run")
    ID_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    id: int
    compute: ComputeResponse
    ack: SessionAck
    error: Error
    run: RunResponse
    def __init__(self, id: _Optional[int] = ..., compute: _Optional[_Union[ComputeResponse, _Mapping]] = ..., ack: _Optional[_Union[SessionAck, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., run: _Optional[_Union[RunResponse, _Mapping]] = ...) -> None: ...

class Announcement(_message.Message):
    __slots__ = ("peer_id", "addrs", "fragments", "load", "uptime_s", "model_id", "seq", "sessions", "storage_free_bytes")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRS_FIELD_NUMBER: _ClassVar[int]
    FRAGMENTS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    addrs: _containers.RepeatedScalarFieldContainer[str]
    fragments: _containers.RepeatedScalarFieldContainer[str]
    load: float
    uptime_s: float
    model_id: str
    seq: int
    sessions: int
    storage_free_bytes: int
    def __init__(self, peer_id: _Optional[str] = ..., addrs: _Optional[_Iterable[str]] = ..., fragments: _Optional[_Iterable[str]] = ..., load: _Optional[float] = ..., uptime_s: _Optional[float] = ..., model_id: _Optional[str] = ..., seq: _Optional[int] = ..., sessions: _Optional[int] = ..., storage_free_bytes: _Optional[int] = ...) -> None: ...

class FragmentRequest(_message.Message):
    __slots__ = ("fragment_id", "offset", "length")
    FRAGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    fragment_id: str
    offset: int
    length: int
    def __init__(self, fragment_id: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class FragmentChunk(_message.Message):
    __slots__ = ("fragment_id", "offset", "total_bytes", "data", "last", "error")
    FRAGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    fragment_id: str
    offset: int
    total_bytes: int
    data: bytes
    last: bool
    error: Error
    def __init__(self, fragment_id: _Optional[str] = ..., offset: _Optional[int] = ..., total_bytes: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class ManifestRecord(_message.Message):
    __slots__ = ("model_id", "manifest_json")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    manifest_json: bytes
    def __init__(self, model_id: _Optional[str] = ..., manifest_json: _Optional[bytes] = ...) -> None: ...
