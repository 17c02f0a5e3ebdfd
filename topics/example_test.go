package topics_test

import (
	"errors"
	"fmt"

	"github.com/vigilhq/vigil/topics"
)

func ExampleParse() {
	t, err := topics.Parse("hospital/h1/patient/p7/vitals")
	fmt.Println(t.Kind, t.Hospital, t.Patient, err)

	_, err = topics.Parse("hospital/h1/patient/a b/vitals")
	fmt.Println(errors.Is(err, topics.ErrInvalidTopic), errors.Is(err, topics.ErrInvalidID))
	fmt.Println(err)
	// Output:
	// vitals h1 p7 <nil>
	// true true
	// invalid topic "hospital/h1/patient/a b/vitals": invalid patient id "a b": contains ' '
}

func ExampleFilterHospital() {
	for _, f := range []string{"hospital/h1/patient/+/risk", "hospital/+/alerts", "#"} {
		h, ok := topics.FilterHospital(f)
		fmt.Printf("%s: %q %v\n", f, h, ok)
	}
	// Output:
	// hospital/h1/patient/+/risk: "h1" true
	// hospital/+/alerts: "" false
	// #: "" false
}

func ExampleWithin() {
	scope := topics.DeviceFilter("h1", "d1")
	fmt.Println(topics.Within("hospital/h1/device/d1/errors", scope))
	fmt.Println(topics.Within("hospital/h1/device/+/status", scope))
	// Output:
	// true
	// false
}
