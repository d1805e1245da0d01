"""Seeded test data: operands (``operands``) and DAG workloads (``dags``)."""
