// Package detectors judges audit events: it scores each event's risk from
// explainable factors and (as it grows) runs the threat detectors over the
// event stream.
package detectors
