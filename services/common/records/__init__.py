"""The system of record on PostgreSQL: settings, pools, migrations, the outbox, the audit log.

Each design's tables are read and written by its own module: services/designs/fraud/records.py
(decisions, labels), recs/records.py (catalog titles, profiles), experiments/records.py (history).
"""
