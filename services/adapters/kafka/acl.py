"""Kafka ACLs of each role (issue 11): what the broker lets a channel, meeting administration and the ledger do.

The operator is the broker's super user and needs none. Every topic is named as the settings name it
(their topic prefix included), so a test or a rehearsal in a namespace of its own grants for that
namespace only. Sent with aiokafka's CreateAcls/DeleteAcls requests (v1, Kafka 2.0+): its admin client
has no create_acls of its own, and Kafka's AclCommand is not among the broker's jars.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest

from services.adapters.kafka.topics import Roles, client_options, started
from services.settings import Settings

# Kafka's codes (org.apache.kafka.common.resource.ResourceType, PatternType, acl.AclOperation, AclPermissionType).
TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID = 2, 3, 4, 5
ANY = 1  # a filter matching every resource type, pattern type, operation or permission
LITERAL, PREFIXED = 3, 4
READ, WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS, IDEMPOTENT_WRITE = 3, 4, 5, 8, 10, 12
ALLOW = 3
CLUSTER_NAME = "kafka-cluster"
OPERATION_NAMES = {
    READ: "READ",
    WRITE: "WRITE",
    CREATE: "CREATE",
    DESCRIBE: "DESCRIBE",
    DESCRIBE_CONFIGS: "DESCRIBE_CONFIGS",
    IDEMPOTENT_WRITE: "IDEMPOTENT_WRITE",
}
RESOURCE_NAMES = {TOPIC: "topic", GROUP: "group", CLUSTER: "cluster", TRANSACTIONAL_ID: "transactional id"}
# Roles a principal can be given here; the operator is the super user (server.properties super.users).
GRANTABLE = ("channel", "admin", "ledger")
# Between a principal's user name and the rest of its consumer groups' names: a bare prefix `vote`
# covered the ledger's group `vote-ledger`, and `channel-dem` every group of `channel-demo`.
GROUP_SEPARATOR = "."


@dataclass(frozen=True)
class Acl:
    """One permission: ALLOW operation on a resource (a name, or every name with that prefix), from any host."""

    resource_type: int
    name: str
    operation: int
    pattern: int = LITERAL

    def __str__(self) -> str:
        prefix = "*" if self.pattern == PREFIXED else ""
        return f"{OPERATION_NAMES[self.operation]} {RESOURCE_NAMES[self.resource_type]} {self.name}{prefix}"


def role_acls(settings: Settings, role: str, user: str) -> list[Acl]:
    """What a principal of the role may do on the settings' topics: nothing more (WRITE and READ imply DESCRIBE).

    channel: write votes.submissions, read votes.decisions with consumer groups named
    ``<user>.<anything>`` (own_groups). admin: write and read meetings.admin. ledger: read both
    inputs, write (and read back) what it publishes, create its topics, its consumer group, and the
    answers relay's transactional ids.
    Nobody but the operator may delete or alter a topic, its configuration or its records.
    """
    s = settings
    if role == "channel":
        return [
            Acl(TOPIC, s.submissions_topic, WRITE),
            Acl(TOPIC, s.decisions_topic, READ),
            # Its own groups only: a group named after another channel would let it disturb that one's reads.
            # The separator keeps `vote` out of `vote-ledger` and `bank` out of `bank-2`'s groups.
            Acl(GROUP, own_groups(user), READ, PREFIXED),
        ]
    if role == "admin":
        return [Acl(TOPIC, s.admin_topic, WRITE), Acl(TOPIC, s.admin_topic, READ)]
    if role == "ledger":
        published = (s.parked_topic, s.heads_topic, s.decisions_topic)
        return [
            *(Acl(TOPIC, topic, READ) for topic in (s.submissions_topic, s.admin_topic)),
            *(Acl(TOPIC, topic, WRITE) for topic in published),
            # Read back: the last chain heads and answers it published, to resume from them.
            *(Acl(TOPIC, topic, READ) for topic in (s.heads_topic, s.decisions_topic)),
            *(Acl(TOPIC, topic, CREATE) for topic in (s.submissions_topic, s.admin_topic, *published)),
            Acl(GROUP, s.consumer_group, READ),
            # Read (never alter) the submissions topic's configuration: at start the ledger warns when it
            # does not stamp the broker's clock (services/adapters/kafka/topic_clock.py).
            Acl(TOPIC, s.submissions_topic, DESCRIBE_CONFIGS),
            # Transactional ids of its own: the answers relay's (services/runtime/answers.py
            # transactional_id: vote-ledger-answers.<group>.<topic>), or <group>.<anything>. Never the
            # bare group as a prefix: `vote-ledger` would cover every `vote-ledger-2` deployment's ids.
            *(
                Acl(TRANSACTIONAL_ID, prefix, operation, PREFIXED)
                for prefix in (own_groups(s.consumer_group), f"vote-ledger-answers.{s.consumer_group}.")
                for operation in (WRITE, DESCRIBE)
            ),
            # Implied by WRITE on a topic since Kafka 3.0 (KIP-679); said for older brokers.
            Acl(CLUSTER, CLUSTER_NAME, IDEMPOTENT_WRITE),
        ]
    raise ValueError(f"no ACLs for role {role!r}: one of {', '.join(GRANTABLE)}")


def own_groups(name: str) -> str:
    """The prefix of the consumer groups (or transactional ids) a principal or deployment owns: ``<name>.``."""
    return name + GROUP_SEPARATOR


def overlapping(name: str, others: list[str]) -> str | None:
    """The first of ``others`` one of whose names is a prefix of the other's (its groups could overlap)."""
    return next((o for o in others if o != name and (o.startswith(name) or name.startswith(o))), None)


async def principals(settings: Settings, as_roles: Roles = "operator") -> set[str]:
    """The user names that hold any ACL on the broker (User:NAME principals)."""
    admin = AIOKafkaAdminClient(**client_options(settings, as_roles))
    await started(admin)
    try:
        response = await admin._send_request(DescribeAclsRequest(ANY, None, ANY, None, None, ANY, ANY))
    finally:
        await admin.close()
    if response.error_code:
        raise for_code(response.error_code)(response.error_message or "")
    found = set()
    for resource in response.resources:
        for acl in resource[3]:
            kind, _, user = acl[0].partition(":")
            if kind == "User":
                found.add(user)
    return found


def superseded_acls(settings: Settings, role: str, user: str) -> list[Acl]:
    """Grants of earlier versions too wide to keep: bare-name prefixes (a `vote` channel joined `vote-ledger`)."""
    if role == "channel":
        return [Acl(GROUP, user, READ, PREFIXED)]
    if role == "ledger":
        return [Acl(TRANSACTIONAL_ID, settings.consumer_group, op, PREFIXED) for op in (WRITE, DESCRIBE)]
    return []


async def grant(settings: Settings, role: str, user: str, as_roles: Roles = "operator") -> list[Acl]:
    """Create the role's ACLs for User:user (already present ones are kept as they are); return them.

    The superseded, wider grants of earlier versions are deleted first, so `stack up` narrows an
    existing stack's principals too.
    """
    old = superseded_acls(settings, role, user)
    await _send(settings, as_roles, [_request(DeleteAclsRequest, acl, user) for acl in old], "filter_responses")
    acls = role_acls(settings, role, user)
    await _send(settings, as_roles, [_request(CreateAclsRequest, acl, user) for acl in acls], "creation_responses")
    return acls


async def revoke(settings: Settings, role: str, user: str, as_roles: Roles = "operator") -> None:
    """Delete the role's ACLs for User:user (those role_acls lists for these settings)."""
    acls = role_acls(settings, role, user)
    await _send(settings, as_roles, [_request(DeleteAclsRequest, acl, user) for acl in acls], "filter_responses")


def _request(kind: type[CreateAclsRequest] | type[DeleteAclsRequest], acl: Acl, user: str):
    return kind(acl.resource_type, acl.name, acl.pattern, f"User:{user}", "*", acl.operation, ALLOW)


async def _send(settings: Settings, as_roles: Roles, requests: list, field: str) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings, as_roles))
    await started(admin)
    try:
        for request in requests:
            # The admin client's own request path (it negotiates the version); it has no public ACL calls.
            response = await admin._send_request(request)
            for result in getattr(response, field):
                error_code, message = result[0], result[1]
                if error_code:
                    raise for_code(error_code)(message or "")
    finally:
        await admin.close()
