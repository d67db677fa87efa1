"""The API's routes: thin, each one call into a service."""

from fastapi import APIRouter

from api.routes import approvals, health, invoices

router = APIRouter()
router.include_router(health.router)
router.include_router(invoices.router)
router.include_router(approvals.router)

__all__ = ["router"]
