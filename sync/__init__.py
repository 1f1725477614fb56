"""Keep AlgaPSA clients in step with Acronis Cyber Protect Cloud customer tenants."""

__version__ = "0.1.0"
