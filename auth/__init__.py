"""Credentials, passwords, tokens and the permission classes behind the authorization directives."""
