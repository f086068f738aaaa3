"""HubSpot (CRM v3) as the marketing department's source: contacts, companies, marketing
campaigns, marketing e-mail events and contact-company associations. ``simulator`` serves a
local reproduction of the API for tests, the demo and the benchmark."""
