"""Topic names: the public, versioned contract of the hub (documented in README.md)."""

from __future__ import annotations

RAW_SALES_LEADS = "crm.raw.sales.leads.v1"
CLEAN_SALES_LEADS = "crm.clean.sales.leads.v1"
QUARANTINE = "crm.quarantine.v1"
QUARANTINE_REDRIVES = "crm.quarantine.redrives.v1"
DLP_INCIDENTS = "crm.dlp.incidents.v1"
# Tokens and their values sealed to the vault key (hub.dlp.vault), keyed by token; compacted.
DLP_VAULT = "crm.dlp.vault.v1"
RAW_MARKETING_CONTACTS = "crm.raw.marketing.contacts.v1"
CLEAN_MARKETING_CONTACTS = "crm.clean.marketing.contacts.v1"
RAW_MARKETING_EMAIL_EVENTS = "crm.raw.marketing.email-events.v1"
CLEAN_MARKETING_EMAIL_EVENTS = "crm.clean.marketing.email-events.v1"
RAW_SERVICE_TICKETS = "crm.raw.service.tickets.v1"
CLEAN_SERVICE_TICKETS = "crm.clean.service.tickets.v1"
RAW_HR_EMPLOYEES = "crm.raw.hr.employees.v1"
CLEAN_HR_EMPLOYEES = "crm.clean.hr.employees.v1"
RAW_HR_ERASURES = "crm.raw.hr.employee-erasures.v1"
CLEAN_HR_ERASURES = "crm.clean.hr.employee-erasures.v1"
# Webhook deliveries as events (published by the API's webhook receiver).
HUBSPOT_CONTACT_WEBHOOKS = "crm.raw.marketing.contact-webhooks.v1"
ZENDESK_TICKET_WEBHOOKS = "crm.raw.service.ticket-webhooks.v1"
# Valid marketing contacts re-keyed by normalised e-mail address, for the uniqueness table.
MARKETING_EMAIL_CLAIMS = "_hub-marketing-email-claims"

SCHEMAS = "_schemas"
CONNECT_OFFSETS = "_hub-connect-offsets"
CONNECT_CONFIGS = "_hub-connect-configs"
CONNECT_STATUS = "_hub-connect-status"

# topic -> (partitions, extra topic config)
DEFAULT_PARTITIONS = 4
TOPIC_SPECS: dict[str, tuple[int, dict[str, str]]] = {
    RAW_SALES_LEADS: (DEFAULT_PARTITIONS, {}),
    CLEAN_SALES_LEADS: (DEFAULT_PARTITIONS, {}),
    QUARANTINE: (DEFAULT_PARTITIONS, {}),
    QUARANTINE_REDRIVES: (DEFAULT_PARTITIONS, {}),
    DLP_INCIDENTS: (DEFAULT_PARTITIONS, {}),
    DLP_VAULT: (DEFAULT_PARTITIONS, {"cleanup.policy": "compact"}),
    RAW_MARKETING_CONTACTS: (DEFAULT_PARTITIONS, {}),
    CLEAN_MARKETING_CONTACTS: (DEFAULT_PARTITIONS, {}),
    MARKETING_EMAIL_CLAIMS: (DEFAULT_PARTITIONS, {}),
    RAW_MARKETING_EMAIL_EVENTS: (DEFAULT_PARTITIONS, {}),
    CLEAN_MARKETING_EMAIL_EVENTS: (DEFAULT_PARTITIONS, {}),
    RAW_SERVICE_TICKETS: (DEFAULT_PARTITIONS, {}),
    CLEAN_SERVICE_TICKETS: (DEFAULT_PARTITIONS, {}),
    RAW_HR_EMPLOYEES: (DEFAULT_PARTITIONS, {}),
    CLEAN_HR_EMPLOYEES: (DEFAULT_PARTITIONS, {}),
    RAW_HR_ERASURES: (DEFAULT_PARTITIONS, {}),
    CLEAN_HR_ERASURES: (DEFAULT_PARTITIONS, {}),
    HUBSPOT_CONTACT_WEBHOOKS: (DEFAULT_PARTITIONS, {}),
    ZENDESK_TICKET_WEBHOOKS: (DEFAULT_PARTITIONS, {}),
    SCHEMAS: (1, {"cleanup.policy": "compact"}),
    CONNECT_OFFSETS: (1, {"cleanup.policy": "compact"}),
    CONNECT_CONFIGS: (1, {"cleanup.policy": "compact"}),
    CONNECT_STATUS: (1, {"cleanup.policy": "compact"}),
}


def subject_for(topic: str) -> str:
    """Confluent TopicNameStrategy: the value schema of `topic` lives under `<topic>-value`."""
    return f"{topic}-value"
