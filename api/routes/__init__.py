"""The API's routes: thin, each one call into a service."""

from fastapi import APIRouter

from api.routes import (
    approvals,
    channels,
    collection,
    debtors,
    health,
    imports,
    invoices,
    previews,
    tasks,
    webhooks,
)

router = APIRouter()
router.include_router(health.router)
router.include_router(invoices.router)
router.include_router(approvals.router)
router.include_router(collection.router)
router.include_router(tasks.router)
router.include_router(webhooks.router)
router.include_router(imports.router)
router.include_router(previews.router)
router.include_router(debtors.router)
router.include_router(channels.router)

__all__ = ["router"]
