"""Backups of a tenant: the program the backup CronJob runs (``program``), the restore program (``restore``) and
their S3 client (``s3``): standard library only, copied into the backup image (Dockerfile.backup). The objects
that run them are rendered by ``components/backup``."""
