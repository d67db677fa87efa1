"""Docker healthcheck of `relance worker`: healthy while this container's worker polls its queue.

Temporal lists a task queue's recent pollers with their identity, `<pid>@<hostname>` by default,
and a container's hostname is its own: that tells this worker from the others of the same queue.
Exit status 0 when healthy, 1 otherwise. Reads the same RELANCE_* settings as the worker.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from datetime import timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from config import Settings
from workflows.client import connect


async def polling_identities(settings: Settings) -> list[str]:
    client = await connect(settings)
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.temporal_namespace,
            task_queue=TaskQueue(name=settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=timedelta(seconds=5),
    )
    return [poller.identity for poller in response.pollers]


def main(hostname: str | None = None) -> int:
    hostname = hostname or socket.gethostname()
    try:
        settings = Settings()
        identities = asyncio.run(polling_identities(settings))
    except Exception as err:  # any failure is "unhealthy"; say why in `docker inspect`
        print(f"unhealthy: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    if not any(identity.endswith(f"@{hostname}") for identity in identities):
        print(
            f"unhealthy: no worker on {hostname} polls task queue {settings.task_queue!r} "
            f"(pollers: {', '.join(identities) or 'none'})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: the Temporal client's Rust threads can outlive the event loop
    # and abort the process while Python finalizes ("PyGILState_Release ... finalizing",
    # temporalio/sdk-python#300), which would turn a healthy answer into exit status -6.
    os._exit(code)
