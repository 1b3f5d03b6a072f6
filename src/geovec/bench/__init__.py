"""RSMEB: the remote-sensing multimodal embedding benchmark harness (tasks as data, cached embedding, JSON results).

The data shapes and readers live in ``geovec.datasets``; ``BenchDataError`` is the old name of its ``DatasetError``.
"""

from geovec.bench.task import CATEGORIES, Task, TaskMetadata
from geovec.bench.tasks import get_task, list_tasks, register_task
from geovec.datasets import CandidateQuery, DatasetError, RetrievalSplit, TaskData

BenchDataError = DatasetError

__all__ = ["BenchDataError", "CATEGORIES", "CandidateQuery", "DatasetError", "RetrievalSplit", "Task", "TaskData",
           "TaskMetadata", "get_task", "list_tasks", "register_task"]
