"""The SovereignSuite API: pydantic models (the source of truth), CRD generation, input validation."""

from .models import API_VERSION, GROUP, VERSION, NationalCloud, SovereignSuite  # noqa: F401
