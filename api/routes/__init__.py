"""The API's routes: thin, each one call into a service."""

from fastapi import APIRouter, Depends

from api.deps import authorize
from api.idempotency import idempotency
from api.routes import (
    approvals,
    channels,
    collection,
    debtors,
    health,
    imports,
    invoices,
    legal_files,
    previews,
    privacy,
    tasks,
    webhooks,
    write_offs,
)

# Every endpoint of these routers is authorized by the role table (api.roles), and every
# state-changing one honours an Idempotency-Key (api.idempotency): declared once, here.
_GUARDED = [Depends(authorize), Depends(idempotency)]

router = APIRouter()
router.include_router(health.router)
router.include_router(webhooks.router)
# Its signed link is the credential (api.roles.PUBLIC).
router.include_router(legal_files.router)
for module in (
    invoices,
    approvals,
    collection,
    write_offs,
    tasks,
    imports,
    previews,
    debtors,
    privacy,
):
    router.include_router(module.router, dependencies=_GUARDED)

__all__ = ["router"]
# Provider callbacks authenticate by their signatures; the rest checks the role table per route.
router.include_router(channels.router)
