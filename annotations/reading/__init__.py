"""Reading: one kind object per read kind (single read, follow-up read, answer key) that validates, stores, queues
consensus and summarises a submitted read document.
"""
