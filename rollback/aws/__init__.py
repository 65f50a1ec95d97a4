"""Small typed wrappers per AWS service, and the one session factory.

Wrappers take a boto3 client in their constructor, turn botocore errors into
`rollback.errors` classes and return plain data. Nothing here creates a client
at import time, and boto3 is imported only when a session is built.
"""
