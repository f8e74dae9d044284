// Package tools pins the code generators the tlstap module uses (mdatagen).
// It is a separate module so that the generators' dependencies do not enter
// the main module's go.mod.
package tools
