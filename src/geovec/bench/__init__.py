"""RSMEB: the remote-sensing multimodal embedding benchmark harness (tasks as data, cached embedding, JSON results)."""

from geovec.bench.data import BenchDataError, CandidateQuery, RetrievalSplit, TaskData
from geovec.bench.task import CATEGORIES, Task, TaskMetadata, get_task, list_tasks, register_task

__all__ = ["BenchDataError", "CATEGORIES", "CandidateQuery", "RetrievalSplit", "Task", "TaskData", "TaskMetadata",
           "get_task", "list_tasks", "register_task"]
