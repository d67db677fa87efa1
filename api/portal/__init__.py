"""The debtor portal: a personal page, reached by a signed link, to pay, dispute, propose a
plan, promise a date or correct contact details. `install_portal` wires it into the app."""

from api.portal.routes import install_portal

__all__ = ["install_portal"]
