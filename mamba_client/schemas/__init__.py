"""The wire contract between Mamba's gateway and its clients, defined once.

Statuses (`RunStatus`, `StepStatus`, `ToolCallStatus`) are `StrEnum`s used by the SQL store, the
HTTP bodies, the events and the CLI alike. Request bodies (`SubmitRun`, `AnswerRun`, `ForkRun`,
`CancelRun`) forbid unknown fields; response bodies (`Run`, `StepRecord`, `RunPage`) and events
ignore unknown fields, so an older client keeps working against a newer gateway.

Imports pydantic only: never ``mamba_worker``, SQL or pydantic-ai.
"""

from mamba_client.schemas._errors import ErrorBody
from mamba_client.schemas._events import (
    EVENT_TYPES,
    Compacted,
    Event,
    EventAdapter,
    ModelResponseRecorded,
    ReasoningRecorded,
    RunCancelled,
    RunFailed,
    RunResumed,
    RunStarted,
    RunSubmitted,
    RunSucceeded,
    RunWaiting,
    StepCommitted,
    StepFailed,
    StepRedispatched,
    StepStarted,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallInDoubt,
    ToolCallRef,
    ToolCallStarted,
)
from mamba_client.schemas._runs import (
    AnswerRun,
    CancelRun,
    ForkRun,
    Run,
    RunOptions,
    RunPage,
    StepRecord,
    SubmitRun,
    Waiting,
)
from mamba_client.schemas._status import (
    InDoubtDecision,
    RedispatchReason,
    ResumeReason,
    RunStatus,
    StepStatus,
    ToolCallStatus,
    WaitReason,
)
from mamba_client.schemas._usage import Usage

__all__ = [
    "AnswerRun",
    "CancelRun",
    "Compacted",
    "EVENT_TYPES",
    "ErrorBody",
    "Event",
    "EventAdapter",
    "ForkRun",
    "InDoubtDecision",
    "ModelResponseRecorded",
    "ReasoningRecorded",
    "RedispatchReason",
    "ResumeReason",
    "Run",
    "RunCancelled",
    "RunFailed",
    "RunOptions",
    "RunPage",
    "RunResumed",
    "RunStarted",
    "RunStatus",
    "RunSubmitted",
    "RunSucceeded",
    "RunWaiting",
    "StepCommitted",
    "StepFailed",
    "StepRecord",
    "StepRedispatched",
    "StepStarted",
    "StepStatus",
    "SubmitRun",
    "ToolCallFailed",
    "ToolCallFinished",
    "ToolCallInDoubt",
    "ToolCallRef",
    "ToolCallStarted",
    "ToolCallStatus",
    "Usage",
    "WaitReason",
    "Waiting",
]
