package main

import (
	"context"
	"testing"

	"github.com/vigilhq/vigil/devices"
)

// TestUnassignPatientBehindTheStore: a registry sharing the store with another process (here
// the harness's Vigil) whose memory is behind it unassigns, on a discharge, only the devices
// the store still gives to the patient, and takes a device deleted meanwhile in its stride;
// Sync then brings its memory in line.
func TestUnassignPatientBehindTheStore(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.admit("h1", "p1")
	h.admit("h1", "p2")
	h.device("h1", "mon-1", "p1")
	h.device("h1", "mon-2", "p1")
	other, err := devices.Open(ctx, deviceStore{h.v.st}, devices.Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	// Through Vigil, after the other registry loaded: mon-1 moves to p2, mon-2 is deleted.
	h.must(200, "PUT", "/api/v1/hospitals/h1/devices/mon-1/assignment", h.admin, map[string]string{"patient": "p2"})
	h.must(204, "DELETE", "/api/v1/hospitals/h1/devices/mon-2", h.admin, nil)
	if got := other.AssignedTo("h1", "p1"); len(got) != 2 {
		t.Fatalf("the other registry's memory: p1 has %v; want both devices still (it is behind)", got)
	}

	if err := other.UnassignPatient(ctx, "h1", "p1"); err != nil {
		t.Fatalf("UnassignPatient(p1) with a device deleted meanwhile: %v", err)
	}
	if d, err := h.v.st.GetDevice(ctx, "mon-1"); err != nil || d.Patient != "p2" {
		t.Fatalf("mon-1 after p1's devices were unassigned: patient %q, %v; want p2 still", d.Patient, err)
	}
	var heard []devices.Change
	other.Observe(func(c devices.Change) { heard = append(heard, c) })
	if err := other.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got := other.AssignedTo("h1", "p2"); len(got) != 1 || got[0] != "mon-1" {
		t.Fatalf("after Sync, p2 has %v; want [mon-1]", got)
	}
	if _, _, ok := other.Device("mon-2"); ok {
		t.Fatal("after Sync, the deleted mon-2 is still known")
	}
	kinds := map[devices.ChangeKind]string{}
	for _, c := range heard {
		kinds[c.Kind] = c.Device
	}
	if kinds[devices.Assigned] != "mon-1" || kinds[devices.Deleted] != "mon-2" {
		t.Fatalf("Sync announced %+v; want mon-1 assigned and mon-2 deleted", heard)
	}
}

// TestSyncUnassignsFromGonePatient: a device the store gives to a patient who is not admitted
// (an assignment through one process that raced a discharge through another) is unassigned by
// the first Sync that finds it.
func TestSyncUnassignsFromGonePatient(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.admit("h1", "p1")
	other, err := devices.Open(ctx, deviceStore{h.v.st}, devices.Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	h.device("h1", "mon-1", "p1")
	// The race's outcome: the assignment landed, the patient record is gone.
	if err := h.v.st.DeletePatient(ctx, "h1", "p1"); err != nil {
		t.Fatal(err)
	}
	if err := other.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if d, err := h.v.st.GetDevice(ctx, "mon-1"); err != nil || d.Patient != "" {
		t.Fatalf("mon-1 after Sync: patient %q, %v; want unassigned", d.Patient, err)
	}
	if got := other.AssignedTo("h1", "p1"); len(got) != 0 {
		t.Fatalf("after Sync, the other registry gives p1 %v; want nothing", got)
	}
}
