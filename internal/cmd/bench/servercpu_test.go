package main

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// A server's CPU time includes what its ended children used, as an ended
// IMAP session's: here this test process plays the server.
func TestServerCPUCountsEndedChildren(t *testing.T) {
	before := serverCPU(os.Getpid())
	if before < 0 {
		t.Fatal("no CPU time for this process")
	}
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if child < 50*time.Millisecond {
		t.Skipf("the child used only %v of CPU: too little to tell", child)
	}
	if got := serverCPU(os.Getpid()) - before; got < child-2*clockTick {
		t.Errorf("CPU time grew by %v while a child used %v", got, child)
	}
	if serverCPU(0) != -1 {
		t.Error("serverCPU(0): want -1, unknown")
	}
}

// findMaster finds a process by its arguments, and only that one.
func TestFindMaster(t *testing.T) {
	// An argument no other process has, so that a concurrent run of this
	// test elsewhere on the machine is never found instead.
	arg := fmt.Sprintf("30.%09d", os.Getpid())
	cmd := exec.Command("sleep", arg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if got := findMaster("sleep", arg); got != cmd.Process.Pid {
		t.Errorf("findMaster = %d; want %d", got, cmd.Process.Pid)
	}
	if got := findMaster("sleep", arg+"1"); got != 0 {
		t.Errorf("findMaster of an argument nobody has = %d; want 0", got)
	}
	if got := procParent(cmd.Process.Pid); got != os.Getpid() {
		t.Errorf("procParent = %d; want %d", got, os.Getpid())
	}
}
