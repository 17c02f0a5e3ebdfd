package devices

import "fmt"

// Bedside is one simulated bed: its monitor (without a secret until provisioned), the
// patient's name and the bed.
type Bedside struct {
	Monitor
	Name string
	Bed  string
}

// demoPattern spreads the scenarios over every 12 beds: 5 stable, 2 deteriorating, 2 hypoxia,
// 1 bradycardia, 1 sensor_fault, 1 dropout. The first beds are the eventful ones, so even a
// small ward shows alerts.
var demoPattern = [12]Scenario{
	Deteriorating, Stable, Hypoxia, Bradycardia, Stable, SensorFault,
	Deteriorating, Stable, Dropout, Hypoxia, Stable, Stable,
}

var (
	givenNames  = [...]string{"Ada", "Bram", "Chioma", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kaia", "Luca", "Mei", "Nils", "Olu", "Priya", "Quentin", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wen", "Yusuf", "Zofia"}
	familyNames = [...]string{"Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Haddad", "Kowalski", "Fernandes", "Brennan", "Mensah", "Schmidt", "Rossi", "Nakamura", "Ivanova", "Castillo", "Byrne", "Adeyemi", "Larsen", "Quispe", "Hoffmann", "Silva", "Murphy", "Dubois"}
)

// DemoWard returns n bedsides of hospital h: monitors demo-mon-01..., patients demo-p01...,
// beds bed-01..., with made-up names and the scenarios of demoPattern. With a TimeScale of 10
// or more, the first alerts come within a minute.
func DemoWard(h string, n int) []Bedside {
	width := len(fmt.Sprint(n))
	width = max(width, 2)
	beds := make([]Bedside, n)
	for i := range beds {
		num := fmt.Sprintf("%0*d", width, i+1)
		beds[i] = Bedside{
			Monitor: Monitor{
				Device:   "demo-mon-" + num,
				Hospital: h,
				Patient:  "demo-p" + num,
				Scenario: demoPattern[i%len(demoPattern)],
			},
			Name: givenNames[i%len(givenNames)] + " " + familyNames[(i*7)%len(familyNames)],
			Bed:  "bed-" + num,
		}
	}
	return beds
}
