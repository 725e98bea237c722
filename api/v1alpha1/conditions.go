package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// GetConditions returns the Organization's conditions for controllers to change.
func (o *Organization) GetConditions() *[]metav1.Condition { return &o.Status.Conditions }

// SetObservedGeneration records the generation a successful pass acted on.
func (o *Organization) SetObservedGeneration(g int64) { o.Status.ObservedGeneration = g }

// GetConditions returns the Invitation's conditions for controllers to change.
func (i *Invitation) GetConditions() *[]metav1.Condition { return &i.Status.Conditions }

// SetObservedGeneration records the generation a successful pass acted on.
func (i *Invitation) SetObservedGeneration(g int64) { i.Status.ObservedGeneration = g }

// GetConditions returns the Member's conditions for controllers to change.
func (m *Member) GetConditions() *[]metav1.Condition { return &m.Status.Conditions }

// SetObservedGeneration records the generation a successful pass acted on.
func (m *Member) SetObservedGeneration(g int64) { m.Status.ObservedGeneration = g }

// GetConditions returns the ExternalUser's conditions for controllers to change.
func (x *ExternalUser) GetConditions() *[]metav1.Condition { return &x.Status.Conditions }

// SetObservedGeneration records the generation a successful pass acted on.
func (x *ExternalUser) SetObservedGeneration(g int64) { x.Status.ObservedGeneration = g }

// GetConditions returns the Collaboration's conditions for controllers to change.
func (c *Collaboration) GetConditions() *[]metav1.Condition { return &c.Status.Conditions }

// SetObservedGeneration records the generation a successful pass acted on.
func (c *Collaboration) SetObservedGeneration(g int64) { c.Status.ObservedGeneration = g }

// GetDeliveries returns the Invitation's delivery records for controllers to change.
func (i *Invitation) GetDeliveries() *[]Delivery { return &i.Status.Deliveries }

// GetDeliveries returns the Member's delivery records for controllers to change.
func (m *Member) GetDeliveries() *[]Delivery { return &m.Status.Deliveries }

// GetDeliveries returns the ExternalUser's delivery records for controllers to change.
func (x *ExternalUser) GetDeliveries() *[]Delivery { return &x.Status.Deliveries }

// GetDeliveries returns the Collaboration's delivery records for controllers to change.
func (c *Collaboration) GetDeliveries() *[]Delivery { return &c.Status.Deliveries }
