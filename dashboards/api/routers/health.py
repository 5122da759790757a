"""``GET /api/health``: is the API up and can it reach its store (for load balancers and ``sleeplm up``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Request, Response, status

from dashboards.api.schemas import Health

router = APIRouter(prefix="/api", tags=["health"])


def package_version() -> str:
    try:
        return version("sleeplm")
    except PackageNotFoundError:
        return "unknown"


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The store cannot be reached"}},
    summary="Health of the API and its store",
)
def health(request: Request, response: Response) -> Health:
    try:
        request.app.state.store_provider.get().ping()
    except Exception as exc:  # StoreUnavailable or any driver error: "not healthy", never a 500
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="unavailable", version=package_version(), store=str(exc).splitlines()[0])
    return Health(status="ok", version=package_version(), store="ok")
