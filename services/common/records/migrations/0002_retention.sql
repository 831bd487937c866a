-- Retention deletes decisions and labels by the transaction's time (services/records: the
-- retention loop, MLSD_RECORDS_KEEP_DAYS): an index each, so a round reads only what goes.
CREATE INDEX fraud_decisions_by_transaction_time ON fraud_decisions (transaction_time);
CREATE INDEX fraud_labels_by_transaction_time ON fraud_labels (transaction_time);
