"""Readers of remote-sensing benchmark datasets in their published layouts, one module per format family.

Every reader is a pure function of files on disk returning ``TaskData`` (a list of ``CandidateQuery`` or a
``RetrievalSplit``); problems raise ``BenchDataError`` naming the file and the record. Instructions are never put
into inputs here: the evaluator adds ``TaskMetadata.query_instruction`` / ``candidate_instruction``.
"""
