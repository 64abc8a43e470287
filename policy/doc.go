// Package policy decides what of a request may be stored: it turns secrets
// into keyed HMAC tokens before anything reaches the audit store.
package policy
