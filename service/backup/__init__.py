"""Encrypted backups of the database, the blob folder, the policy files and the audit head, and their
restore into an empty database and data folder (docs/backup.md). Never the server secrets."""
