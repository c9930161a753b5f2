"""Backups of a tenant: the program the backup CronJob runs (``program``, ``s3``: standard library only, copied
into the backup image) and the renderer of the objects that run it (``render``)."""
