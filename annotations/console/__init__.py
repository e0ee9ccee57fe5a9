"""Admin and researcher console: pages, API and live dashboard."""
